"""``joint``: multitask LoRA training on the union of all tasks, the upper bound."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "joint",
        "cvit_bench.plugins.methods.joint.method:Joint",
        description="one LoRA adapter trained once on all tasks together "
        "(multitask upper bound, a single stage)",
    )
