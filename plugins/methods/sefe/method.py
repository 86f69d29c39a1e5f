"""``sefe``: SEFE's RegLoRA (Chen et al., "SEFE: Superficial and Essential Forgetting
Eliminator for Multimodal Continual Instruction Tuning", ICML 2025).

SEFE has two halves:

* **ASD** (answer style diversification) is data: a share of each task's training answers is
  rewritten into other styles. The rewritten files are released as COIN-ASD, which the
  ``coin-asd`` benchmark reads (``train_x{X}.json``). ``sefe`` on any other benchmark runs
  RegLoRA alone, and its recorded costs say so (``asd: false`` and a note per stage).
* **RegLoRA** (this module): one LoRA per task, merged into the base after the task (SEFE's
  procedure, the ``seqlora`` merge path); before merging, the positions of the top
  ``keep_ratio`` (2%) of ``|Delta W| = |s B A|`` of every adapted layer are kept, as the union
  over all tasks so far; while a later task trains, the loss gains
  ``reg_weight x (1/L) sum_l mean(|Delta W_l| at layer l's kept positions)`` (published weight
  2.5e3), which holds the weights that mattered most to earlier tasks in place.

Published settings (METHODS.md): LoRA r=128, alpha=256, global batch 128. ``Delta W``
includes the LoRA scaling, so it is the actual change of the merged weight; the top-k choice
does not depend on it. Masks are kept as flat indices (for LLaVA-7B about 0.5 GB per task in
int32 on disk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from cvit_bench.harness import config_field
from cvit_bench.harness.types import MethodRequirements, TaskInfo
from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA

ADAPTER = "default"


@dataclass
class SEFEConfig(lora_common.LoRAOptions):
    rank: int = config_field(128, help="LoRA rank r (SEFE: 128)")
    alpha: float = config_field(256.0, help="LoRA alpha (SEFE: 256; updates scaled by alpha / r)")
    keep_ratio: float = config_field(
        0.02,
        help="share of each layer's positions kept after a task: the largest |B A| entries "
        "(SEFE: 2%); the union over tasks is regularised",
    )
    reg_weight: float = config_field(
        2.5e3,
        help="weight of the mean |Delta W| at kept positions, averaged over layers (SEFE: 2.5e3)",
    )

    merge_after_task = True


def lora_layers(peft_model: Any) -> dict[str, Any]:
    """peft's LoRA linear layers by module name."""
    from peft.tuners.lora import LoraLayer

    return {
        name: module
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer) and ADAPTER in getattr(module, "lora_A", {})
    }


def delta_weight(layer: Any) -> torch.Tensor:
    """``s B A``: what the adapter adds to the layer's weight (``out x in``)."""
    a = layer.lora_A[ADAPTER].weight
    b = layer.lora_B[ADAPTER].weight
    return (b @ a) * layer.scaling[ADAPTER]


def top_positions(delta: torch.Tensor, ratio: float) -> torch.Tensor:
    """Flat indices of the ``ceil(ratio x numel)`` largest ``|delta|`` entries, sorted."""
    flat = delta.detach().abs().flatten()
    k = max(1, math.ceil(ratio * flat.numel()))
    return torch.sort(torch.topk(flat, k, sorted=False).indices).values.cpu()


class SEFE(SeqLoRA):
    name = "sefe"
    config_class = SEFEConfig
    requirements = MethodRequirements(model_features=("lora",))
    schedule = "sequential"

    def __init__(self, config: SEFEConfig | None = None) -> None:
        super().__init__(config or SEFEConfig())
        self.masks: dict[str, torch.Tensor] = {}
        self._device_masks: dict[str, torch.Tensor] = {}
        self.asd: bool | None = None
        self.last_penalty = 0.0

    def setup(self, ctx: Any) -> None:
        super().setup(ctx)
        self.asd = getattr(ctx.benchmark, "name", "") == "coin-asd"
        self._device_masks = {}

    # -- RegLoRA -------------------------------------------------------------------------
    def update_masks(self, peft_model: Any) -> None:
        """Add the current adapter's top positions to the kept set of every layer."""
        for name, layer in lora_layers(peft_model).items():
            new = top_positions(delta_weight(layer), self.config.keep_ratio)
            old = self.masks.get(name)
            self.masks[name] = new if old is None else torch.unique(torch.cat([old, new]))
        self._device_masks = {}

    def penalty(self, peft_model: Any) -> torch.Tensor | None:
        """``reg_weight x`` the layer-average of mean ``|Delta W|`` at kept positions."""
        if not self.masks:
            return None
        terms = []
        for name, layer in lora_layers(peft_model).items():
            index = self.masks.get(name)
            if index is None:
                continue
            delta = delta_weight(layer).flatten()
            cached = self._device_masks.get(name)
            if cached is None or cached.device != delta.device:
                cached = index.to(delta.device)
                self._device_masks[name] = cached
            terms.append(delta.index_select(0, cached).abs().mean())
        if not terms:
            return None
        return self.config.reg_weight * torch.stack(terms).mean()

    def training_loss(self, ctx: Any, batch: dict[str, Any], outputs: Any) -> Any:
        reg = self.penalty(ctx.model.model)
        if reg is None:
            return outputs.loss
        self.last_penalty = float(reg.detach())
        return outputs.loss + reg.to(outputs.loss.dtype)

    def after_task(self, ctx: Any, task: TaskInfo | None, samples: Any) -> None:
        self.update_masks(ctx.model.model)
        super().after_task(ctx, task, samples)

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": {k: v.to(torch.int32) for k, v in self.masks.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = {k: v.to(torch.int64) for k, v in state.get("masks", {}).items()}
        self._device_masks = {}

    def costs(self) -> dict[str, Any]:
        out = super().costs()
        out.update(
            {
                "kept_positions": int(sum(v.numel() for v in self.masks.values())),
                "asd": bool(self.asd),
                "last_penalty": self.last_penalty,
            }
        )
        if not self.asd:
            out["notes"] = [
                "no ASD data (the coin-asd benchmark provides it): this run is RegLoRA only"
            ]
        return out
