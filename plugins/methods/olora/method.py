"""``olora``: orthogonal subspace learning (O-LoRA, Wang et al., EMNLP Findings 2023).

Every target linear layer of the language model holds one LoRA adapter per task seen so far;
all of them add to the output (``W x + sum_i (alpha/r) B_i A_i x``), so inference needs no task
identity. Before task ``t`` a fresh adapter (A Kaiming-uniform from a seed of its own, B zero)
is added and every earlier one is frozen; only the new one (and the projector, when
``train.projector_lr`` is set) trains, and the loss gains

    orth_lambda * sum over layers of sum |A_t A_i^T|,  i < t

which pushes the new adapter's input subspace away from the earlier tasks'. The engine is
rebuilt per task, so the optimizer sees exactly the new parameters.

Checkpoints hold every adapter (``olora.safetensors``); a resumed run recreates as many
adapters as the stage had and loads them.

Defaults (LLaVA-1.5-7B): MCITlib runs O-LoRA on UCIT with a total rank of 96 over its six
tasks (16 per task) and alpha = 2r, and ``lambda = 0.05`` (METHODS.md). Here ``rank`` is the
per-task rank (16) and ``alpha`` the per-task alpha (32), which keeps MCITlib's scaling of 2.
O-LoRA's original code also has an L2 term on the new adapter (``lamda_2``), zero in MCITlib's
setting, which is left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness import MethodBase, config_field
from cvit_bench.harness.types import MethodRequirements, TaskInfo
from cvit_bench.plugins.methods import lora_common

STATE_FILE = "olora.safetensors"


@dataclass
class OLoRAConfig(lora_common.LoRAOptions):
    orth_lambda: float = config_field(
        0.05, help="weight of the orthogonality penalty sum |A_cur A_prev^T|"
    )


class OLoRA(MethodBase):
    name = "olora"
    config_class = OLoRAConfig
    requirements = MethodRequirements(
        per_task_parameters=True,
        inference="all task adapters summed (no routing)",
        model_features=("lora",),
    )
    schedule = "sequential"

    def __init__(self, config: OLoRAConfig | None = None) -> None:
        super().__init__(config or OLoRAConfig())
        self.layers: dict[str, Any] = {}
        self.projector = lora_common.PROJECTOR_MODULE

    def setup(self, ctx: Any) -> None:
        from .layer import TaskLoRALinear

        lora_common.refuse_zero3(ctx, self.name, "reads earlier adapters for its penalty")
        self.projector = lora_common.projector_module(ctx)
        c = self.config
        model = ctx.model.model
        for p in model.parameters():
            p.requires_grad_(False)
        targets = list(c.targets) or ctx.model.lora_targets()
        self.layers = lora_common.replace_linears(
            model, targets, lambda name, linear: TaskLoRALinear(linear, c.rank, c.alpha, c.dropout)
        )
        lora_common.set_projector_trainable(
            model, lora_common.trains_projector(ctx), lora_common.projector_module(ctx)
        )

    @property
    def tasks(self) -> int:
        return next(iter(self.layers.values())).tasks if self.layers else 0

    def add_task(self, seed: int) -> None:
        """Freeze every adapter, then add a fresh trainable one to every layer."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.layers.values():
                for p in (*layer.lora_A, *layer.lora_B):
                    p.requires_grad_(False)
                layer.add_task()

    def before_task(self, ctx: Any, task: TaskInfo) -> None:
        self.add_task(ctx.config.seed * 1000 + self.tasks)

    def penalty(self) -> Any:
        total = None
        for layer in self.layers.values():
            term = layer.orthogonality()
            total = term if total is None else total + term
        return total

    def training_loss(self, ctx: Any, batch: dict[str, Any], outputs: Any) -> Any:
        if self.tasks < 2 or self.config.orth_lambda == 0:
            return outputs.loss
        return outputs.loss + self.config.orth_lambda * self.penalty().to(outputs.loss.dtype)

    # -- checkpoints -----------------------------------------------------------------------
    def saved_names(self, model: Any) -> list[str]:
        return [
            n
            for n, _ in model.named_parameters()
            if ".lora_A." in n or ".lora_B." in n or self.projector in n
        ]

    def save_checkpoint(self, ctx: Any, directory: Path) -> None:
        if ctx.rank != 0:
            return
        model = ctx.model.model
        params = dict(model.named_parameters())
        state = {n: params[n] for n in self.saved_names(model)}
        lora_common.save_tensors(Path(directory) / STATE_FILE, state)
        super().save_checkpoint(ctx, directory)

    def state_dict(self) -> dict[str, Any]:
        return {"tasks": self.tasks}

    def load_checkpoint(self, ctx: Any, directory: Path) -> None:
        import pickle

        directory = Path(directory)
        state = pickle.loads((directory / "method_state.pkl").read_bytes())
        while self.tasks < state["tasks"]:
            self.add_task(ctx.config.seed * 1000 + self.tasks)
        for layer in self.layers.values():
            for p in (*layer.lora_A, *layer.lora_B):
                p.requires_grad_(False)
        path = directory / STATE_FILE
        lora_common.load_into(ctx.model.model, lora_common.load_tensors(path), path)

    def costs(self) -> dict[str, Any]:
        extra = sum(
            p.numel() for layer in self.layers.values() for p in (*layer.lora_A, *layer.lora_B)
        )
        return {"stored_samples": 0, "adapters": self.tasks, "extra_params": extra}
