"""``zeroshot``: no training; the starting point evaluated on every task."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "zeroshot",
        "cvit_bench.plugins.methods.zeroshot.method:ZeroShot",
        description="no training: the starting point's score on every task",
    )
