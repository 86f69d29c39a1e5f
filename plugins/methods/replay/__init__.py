"""``replay``: LoRA fine-tuning with a buffer of past samples mixed into every new task."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "replay",
        "cvit_bench.plugins.methods.replay.method:Replay",
        description="one LoRA adapter; a seeded buffer of past training samples is mixed "
        "into each new task's data (stores samples)",
    )
