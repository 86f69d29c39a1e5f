"""``seqlora``: sequential LoRA fine-tuning, the continual lower bound."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "seqlora",
        "cvit_bench.plugins.methods.seqlora.method:SeqLoRA",
        description="one LoRA adapter trained on task after task (optionally merged "
        "into the base after each task)",
    )
