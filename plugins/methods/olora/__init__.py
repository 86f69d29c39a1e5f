"""``olora``: a new LoRA per task, orthogonal to the frozen earlier ones (O-LoRA)."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "olora",
        "cvit_bench.plugins.methods.olora.method:OLoRA",
        description="a new LoRA adapter per task, earlier ones frozen, with a penalty on the "
        "overlap of the new A with the old A matrices (O-LoRA)",
    )
