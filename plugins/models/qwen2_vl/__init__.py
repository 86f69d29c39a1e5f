"""``qwen2-vl``: Qwen2-VL from a local directory in the Hugging Face format."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_models(registrar):
    registrar.add(
        "qwen2-vl",
        "cvit_bench.plugins.models.qwen2_vl.model:Qwen2VL",
        description="Qwen2-VL (2B, 7B) from a local Hugging Face directory; dynamic-resolution "
        "images, ChatML template; nothing is downloaded",
        aliases=("qwen2-vl-2b", "qwen2-vl-7b"),
    )
