"""synth-coin: eight procedurally drawn tasks in COIN's file format (see ``tasks.py``).

``pretraining_samples`` (captioned scenes for a tiny model's pretraining) is importable from
here; it is loaded on first use so that registering the plugin stays light.
"""

from cvit_bench.harness import hookimpl


def __getattr__(name):
    if name == "pretraining_samples":
        from .pretraining import pretraining_samples

        return pretraining_samples
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def register_benchmarks(registrar):
    registrar.add(
        "synth-coin",
        "cvit_bench.plugins.benchmarks.synth_coin.benchmark:SynthCoin",
        description="8 procedurally drawn tasks mirroring COIN's, in COIN's file "
        "format; runs on a CPU in minutes",
    )
