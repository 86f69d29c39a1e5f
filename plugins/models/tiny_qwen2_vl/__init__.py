"""``tiny-qwen2-vl``: a small Qwen2-VL-architecture model built offline, for CPUs and tests."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_models(registrar):
    registrar.add(
        "tiny-qwen2-vl",
        "cvit_bench.plugins.models.tiny_qwen2_vl.model:TinyQwen2VL",
        description="Qwen2-VL architecture in miniature: seeded random weights, "
        "benchmark-trained tokenizer, cached captioning pretraining",
    )
