"""``tiny-llava``: a small LLaVA-architecture model built offline, for CPUs and tests."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_models(registrar):
    registrar.add(
        "tiny-llava",
        "cvit_bench.plugins.models.tiny_llava.model:TinyLlava",
        description="LLaVA-1.5 architecture in miniature: seeded random weights, "
        "benchmark-trained tokenizer, cached captioning pretraining",
    )
