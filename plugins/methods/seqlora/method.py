"""``seqlora``: one LoRA adapter trained on task after task (the lower bound of CVIT papers).

CoIN keeps training the same adapter across tasks; with ``merge_after_task`` the adapter is
folded into the base weights after each task and a fresh one starts (SEFE's procedure). The
adapter is saved in peft's format after every stage (``<stage dir>/adapter``); in merge mode
every adapter merged so far is kept too (``<stage dir>/merged/NN``) so that a resumed run
rebuilds the same base by merging them in order.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness import MethodBase, UsageError, config_field
from cvit_bench.harness.types import MethodRequirements, TaskInfo
from cvit_bench.plugins.methods import lora_common


@dataclass
class SeqLoRAConfig(lora_common.LoRAOptions):
    merge_after_task: bool = config_field(
        False,
        help="merge the adapter into the base after each task and start a fresh one "
        "(SEFE); off: one adapter keeps training (CoIN)",
    )


class SeqLoRA(MethodBase):
    name = "seqlora"
    config_class = SeqLoRAConfig
    requirements = MethodRequirements(model_features=("lora",))
    schedule = "sequential"

    def __init__(self, config: SeqLoRAConfig | None = None) -> None:
        super().__init__(config or SeqLoRAConfig())
        self.merged: list[dict[str, Any]] = []
        self.lora: Any = None

    # -- adapters ------------------------------------------------------------------------
    def _fresh_adapter(self, ctx: Any, base: Any) -> None:
        c = self.config
        targets = list(c.targets) or ctx.model.lora_targets()
        self.lora = lora_common.lora_config(
            c.rank,
            c.alpha,
            c.dropout,
            targets,
            train_projector=ctx.config.train.projector_lr is not None,
            projector=lora_common.projector_module(ctx),
        )
        seed = ctx.config.seed * 1000 + len(self.merged)
        ctx.model.model = lora_common.add_lora(base, self.lora, seed)

    def setup(self, ctx: Any) -> None:
        if self.config.merge_after_task and ctx.config.train.zero_stage == 3:
            raise UsageError(
                "seqlora: merge_after_task merges into whole weights, which ZeRO-3 partitions; "
                "use train.zero_stage 0-2 with it"
            )
        self.merged = []
        self._fresh_adapter(ctx, ctx.model.model)

    def after_task(self, ctx: Any, task: TaskInfo | None, samples: Any) -> None:
        if not self.config.merge_after_task:
            return
        self.merged.append(lora_common.adapter_state(ctx.model.model))
        base = lora_common.merge(ctx.model.model)
        self._fresh_adapter(ctx, base)

    # -- checkpoints ---------------------------------------------------------------------
    def save_checkpoint(self, ctx: Any, directory: Path) -> None:
        with lora_common.gathered(ctx.model.model):  # every rank: gathering is collective
            if ctx.rank == 0:
                self._write(ctx, Path(directory))

    def _write(self, ctx: Any, directory: Path) -> None:
        lora_common.save_adapter(ctx.model.model, directory / lora_common.ADAPTER_DIR)
        merged_root = directory / lora_common.MERGED_DIR
        if merged_root.exists():
            shutil.rmtree(merged_root)
        for i, state in enumerate(self.merged):
            lora_common.write_adapter(merged_root / f"{i:02d}", self.lora, state)
        super().save_checkpoint(ctx, directory)

    def load_checkpoint(self, ctx: Any, directory: Path) -> None:
        from safetensors.torch import load_file

        directory = Path(directory)
        merged_root = directory / lora_common.MERGED_DIR
        merged_dirs = sorted(merged_root.iterdir()) if merged_root.exists() else []
        if merged_dirs:
            base = ctx.model.model.unload()
            self.merged = []
            for path in merged_dirs:
                base = lora_common.merge_saved_adapter(base, path)
                self.merged.append(load_file(str(path / "adapter_model.safetensors")))
            self._fresh_adapter(ctx, base)
        lora_common.load_adapter_weights(ctx.model.model, directory / lora_common.ADAPTER_DIR)
        super().load_checkpoint(ctx, directory)

    def costs(self) -> dict[str, Any]:
        return {"stored_samples": 0, "merged_adapters": len(self.merged)}
