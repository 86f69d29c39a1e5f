"""COIN and its variants, registered as benchmarks."""

from __future__ import annotations

from cvit_bench.harness import hookimpl


@hookimpl
def register_benchmarks(registrar):
    module = "cvit_bench.plugins.benchmarks.coin.benchmark"
    registrar.add(
        "coin",
        f"{module}:Coin",
        description="CoIN: 8 tasks, ScienceQA -> TextVQA -> ImageNet -> GQA -> VizWiz "
        "-> Grounding -> VQAv2 -> OCR-VQA (local data)",
    )
    registrar.add(
        "coin-asd",
        f"{module}:CoinAsd",
        description="COIN-ASD (SEFE): COIN with answer-style-diversified training "
        "files train_x{X}.json",
    )
    registrar.add(
        "coin-sampled",
        f"{module}:CoinSampled",
        description="COIN-Sampled (HiDe-LLaVA): a subsample of COIN in COIN's layout",
    )
