"""UCIT, registered as a benchmark."""

from __future__ import annotations

from cvit_bench.harness import hookimpl


@hookimpl
def register_benchmarks(registrar):
    registrar.add(
        "ucit",
        "cvit_bench.plugins.benchmarks.ucit.benchmark:Ucit",
        description="UCIT (HiDe-LLaVA): ImageNet-R -> ArxivQA -> VizWiz-caption -> "
        "IconQA -> CLEVR-Math -> Flickr30k (local data)",
    )
