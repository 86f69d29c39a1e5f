"""synth-coin: eight procedurally drawn tasks in COIN's file format (see ``tasks.py``)."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_benchmarks(registrar):
    registrar.add(
        "synth-coin",
        "cvit_bench.plugins.benchmarks.synth_coin.benchmark:SynthCoin",
        description="8 procedurally drawn tasks mirroring COIN's, in COIN's file "
        "format; runs on a CPU in minutes",
    )
