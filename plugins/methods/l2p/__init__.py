"""``l2p``: learning to prompt: a key-matched pool of prompts prepended to the input."""

from cvit_bench.harness import hookimpl


@hookimpl
def register_methods(registrar):
    registrar.add(
        "l2p",
        "cvit_bench.plugins.methods.l2p.method:L2P",
        description="a pool of learnable prompts with keys; the frozen image feature picks "
        "the top-k prompts, prepended to the language model's input (L2P)",
    )
