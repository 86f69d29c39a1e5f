"""``mrlora``: MR-LoRA (MLLM-CL), per-task experts chosen by a router LoRA."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "mrlora",
        "cvit_bench.plugins.methods.mrlora.method:MRLoRA",
        description="MR-LoRA: one LoRA expert per task trained from the base; a router LoRA "
        "trained on a few stored samples per task picks the expert per sample",
    )
