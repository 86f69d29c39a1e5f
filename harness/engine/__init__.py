"""The training and evaluation engine: DeepSpeed on CPU (gloo) and GPU (NCCL) alike.

``DeepSpeedEngine(adapter)`` satisfies :class:`cvit_bench.harness.protocols.Engine`. The model
adapter it drives provides (see ``cvit_bench.plugins.models.llava_common.LlavaFamilyAdapter``):

* ``model``: the torch module (a method may have wrapped it, e.g. with peft);
* ``collate_train(samples, max_length)`` and ``collate_eval(samples)``: batches as dicts of
  tensors plus ``"samples"``;
* ``forward(model, batch, device, dtype)``: outputs with ``.loss`` on answer tokens;
* ``generate(model, batch, max_new_tokens, device, dtype)``: one greedy answer per sample;
* ``is_projector_param(name)``: which parameters train at ``train.projector_lr``.

Importing this package does not import torch; the engine class loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DeepSpeedEngine", "ensure_distributed", "free_port"]


def __getattr__(name: str) -> Any:
    if name == "DeepSpeedEngine":
        from .deepspeed_engine import DeepSpeedEngine

        return DeepSpeedEngine
    if name in ("ensure_distributed", "free_port"):
        from . import distributed

        return getattr(distributed, name)
    raise AttributeError(name)
