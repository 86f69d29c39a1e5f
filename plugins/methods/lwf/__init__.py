"""``lwf``: LoRA fine-tuning with distillation from the model as it was before the task."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "lwf",
        "cvit_bench.plugins.methods.lwf.method:LwF",
        description="one LoRA adapter; a temperature-scaled distillation term keeps its "
        "answer-token outputs close to the pre-task model's (no stored data)",
    )
