"""``sefe``: SEFE's RegLoRA (ICML 2025); its ASD half is the ``coin-asd`` benchmark's data."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "sefe",
        "cvit_bench.plugins.methods.sefe.method:SEFE",
        description="SEFE RegLoRA: LoRA merged after every task, changes at each task's "
        "top-2% |BA| positions penalised on later tasks (ASD data: coin-asd)",
    )
