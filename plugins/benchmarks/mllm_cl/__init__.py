"""MLLM-CL, registered as two benchmarks (domain and ability continual learning)."""

from __future__ import annotations

from cvit_bench.harness import hookimpl


@hookimpl
def register_benchmarks(registrar):
    module = "cvit_bench.plugins.benchmarks.mllm_cl.benchmark"
    registrar.add(
        "mllm-dcl",
        f"{module}:MllmDcl",
        description="MLLM-CL domains: remote sensing -> medical -> autonomous driving "
        "-> science -> finance (local data)",
    )
    registrar.add(
        "mllm-acl",
        f"{module}:MllmAcl",
        description="MLLM-CL abilities: OCR -> math & logic -> visual perception -> "
        "GUI agent (local data; math and GUI need external scorers, not scored)",
    )
