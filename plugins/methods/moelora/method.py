"""``moelora``: the MoELoRA baseline of CoIN (Chen et al., NeurIPS 2024 Datasets & Benchmarks).

Every target linear layer of the language model gets a LoRA whose rank is split into ``E``
experts of rank ``r/E``, mixed per token by a dense router ``softmax(R x)`` (no top-k, no load
balancing loss). One set of experts and routers trains on every task in turn: nothing is added
per task and nothing routes by task, so forgetting is limited only by the router spreading
tasks over experts. See ``layer.py`` for the layer.

Checkpoints hold the experts, routers and (when it trains) projector (``moelora.safetensors``).

Defaults (LLaVA-1.5-7B): MCITlib's MoELoRA on UCIT, total rank 18 over 6 experts (3 each),
alpha = 2r = 36 (METHODS.md). The gated sum of the experts is scaled by alpha / r with r the
total rank. Router weights start as a default ``nn.Linear`` (seeded), each expert's A as peft's
LoRA A, B at zero (so training starts from the base model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness import MethodBase, config_field
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.types import MethodRequirements
from cvit_bench.plugins.methods import lora_common

STATE_FILE = "moelora.safetensors"


@dataclass
class MoELoRAConfig(lora_common.LoRAOptions):
    rank: int = config_field(18, help="total LoRA rank r, split evenly over the experts")
    alpha: float = config_field(36.0, help="LoRA alpha (the mixture is scaled by alpha / r)")
    experts: int = config_field(6, help="number of experts E (r must be divisible by E)")


class MoELoRA(MethodBase):
    name = "moelora"
    config_class = MoELoRAConfig
    requirements = MethodRequirements(
        inference="a dense softmax router per token and layer", model_features=("lora",)
    )
    schedule = "sequential"

    def __init__(self, config: MoELoRAConfig | None = None) -> None:
        super().__init__(config or MoELoRAConfig())
        c = self.config
        if c.experts < 1 or c.rank < c.experts or c.rank % c.experts:
            raise UsageError(
                f"method moelora: rank ({c.rank}) must be a positive multiple of experts "
                f"({c.experts})"
            )
        self.layers: dict[str, Any] = {}

    def setup(self, ctx: Any) -> None:
        import torch

        from .layer import MoELoRALinear

        c = self.config
        model = ctx.model.model
        for p in model.parameters():
            p.requires_grad_(False)
        targets = list(c.targets) or ctx.model.lora_targets()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.config.seed * 1000)
            self.layers = lora_common.replace_linears(
                model,
                targets,
                lambda name, linear: MoELoRALinear(linear, c.rank, c.alpha, c.experts, c.dropout),
            )
        lora_common.set_projector_trainable(
            model, lora_common.trains_projector(ctx), lora_common.projector_module(ctx)
        )

    def saved_names(self, model: Any) -> list[str]:
        return [
            n
            for n, p in model.named_parameters()
            if p.requires_grad or any(k in n for k in (".lora_A", ".lora_B", ".router."))
        ]

    def save_checkpoint(self, ctx: Any, directory: Path) -> None:
        if ctx.rank != 0:
            return
        model = ctx.model.model
        params = dict(model.named_parameters())
        lora_common.save_tensors(
            Path(directory) / STATE_FILE, {n: params[n] for n in self.saved_names(model)}
        )
        super().save_checkpoint(ctx, directory)

    def load_checkpoint(self, ctx: Any, directory: Path) -> None:
        path = Path(directory) / STATE_FILE
        lora_common.load_into(ctx.model.model, lora_common.load_tensors(path), path)

    def costs(self) -> dict[str, Any]:
        extra = sum(
            p.numel()
            for layer in self.layers.values()
            for p in layer.parameters()
            if p is not layer.base.weight and p is not layer.base.bias
        )
        return {"stored_samples": 0, "extra_params": extra}
