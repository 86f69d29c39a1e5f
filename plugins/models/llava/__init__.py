"""``llava-1.5``: LLaVA-1.5 (7B, 13B) from a local directory in the Hugging Face llava format."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_models(registrar):
    registrar.add(
        "llava-1.5",
        "cvit_bench.plugins.models.llava.model:Llava15",
        description="LLaVA-1.5 from a local llava-format directory (starting points v15pf, "
        "v15p, v15); nothing is downloaded",
        aliases=("llava-1.5-7b", "llava-1.5-13b"),
    )
