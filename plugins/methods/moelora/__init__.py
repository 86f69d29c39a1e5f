"""``moelora``: LoRA split into experts mixed per token by a learned router (CoIN)."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "moelora",
        "cvit_bench.plugins.methods.moelora.method:MoELoRA",
        description="LoRA rank split into E experts mixed per token by a dense softmax "
        "router; all experts train on every task (CoIN's MoELoRA)",
    )
