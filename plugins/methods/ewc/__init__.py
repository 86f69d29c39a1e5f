"""``ewc``: LoRA fine-tuning with an elastic weight consolidation penalty."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "ewc",
        "cvit_bench.plugins.methods.ewc.method:EWC",
        description="one LoRA adapter with a diagonal-Fisher penalty anchoring it to its "
        "values after earlier tasks (EWC / online EWC)",
    )
