"""``hide``: HiDe-LLaVA (ACL 2025), task-specific expansion and task-general fusion."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "hide",
        "cvit_bench.plugins.methods.hide.method:HiDe",
        description="HiDe-LLaVA: one LoRA expert per task; the top layer mixes experts by "
        "CLIP similarity to task anchors, lower layers use the summed experts",
    )
