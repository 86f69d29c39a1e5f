"""``ewc``: elastic weight consolidation (Kirkpatrick et al., 2017) on the LoRA parameters.

One LoRA adapter trains task after task, as in ``seqlora``. After task ``k`` the diagonal of
the empirical Fisher information of every trainable parameter is estimated on that task's
training samples, ``F_k = mean over samples of (d log p(answer | image, prompt) / d theta)^2``
(gradients of the answer-token loss, one sample per backward pass by default), and the values
``theta*_k`` are kept. Training on later tasks adds

    loss += lambda / 2 * sum_k sum_i F_k,i * (theta_i - theta*_k,i)^2

With ``online`` (Schwarz et al., 2018, "online EWC") a single penalty is kept instead:
``F <- gamma * F + F_k`` and ``theta* <- theta*_k``, so memory does not grow with the number of
tasks. Fisher values and anchors are method state, saved with every stage checkpoint.

The Fisher pass shards its samples over ranks and sums over them; it and the penalty read the
parameters outside the engine, so ZeRO-3 (which partitions them) is refused.

Defaults. No EWC setting for LLaVA-1.5-7B was ever published (METHODS.md: classic CL, no
public LLaVA code), so ``lambda`` and the Fisher sample count are our choice, not tuned: the
LoRA settings are ``seqlora``'s (r=16, alpha=32, MCITlib LoRA-FT); ``lambda = 5000`` makes the
penalty of a LoRA adapter whose Fisher entries are around 1e-4 and whose weights moved by a few
hundredths comparable to the language-modelling loss (Fisher values of LoRA parameters are
small, so the classic image-classification values of 1-100 would do nothing); the Fisher is
estimated on 200 samples per task (one forward and backward pass each). Kirkpatrick et al. keep
one penalty per task, which is the default here (``online = false``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cvit_bench.harness import config_field
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.types import MethodRequirements, Sample, TaskInfo
from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA


@dataclass
class EWCConfig(lora_common.LoRAOptions):
    ewc_lambda: float = config_field(
        5000.0, help="penalty strength lambda (the penalty is lambda/2 * sum F (theta-theta*)^2)"
    )
    online: bool = config_field(
        False,
        help="online EWC: one running Fisher (decayed by gamma) and the latest anchor, "
        "instead of one penalty per past task",
    )
    gamma: float = config_field(1.0, help="online EWC: decay of the running Fisher per task")
    fisher_samples: int | None = config_field(
        200, help="training samples of a task used to estimate its Fisher (null: all)"
    )
    fisher_batch_size: int = config_field(
        1,
        help="samples per backward pass of the Fisher estimate (1: the per-sample empirical "
        "Fisher; larger is faster but squares batch-mean gradients)",
    )

    merge_after_task = False


class EWC(SeqLoRA):
    name = "ewc"
    config_class = EWCConfig
    requirements = MethodRequirements(model_features=("lora",))
    schedule = "sequential"

    def __init__(self, config: EWCConfig | None = None) -> None:
        super().__init__(config or EWCConfig())
        if self.config.fisher_batch_size < 1:
            raise UsageError("method ewc: fisher_batch_size must be >= 1")
        # one (fisher, anchor) pair per past task, or a single running pair when online;
        # CPU fp32 tensors by parameter name
        self.penalties: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._on_device: tuple[Any, list[tuple[dict[str, Any], dict[str, Any]]]] | None = None

    def setup(self, ctx: Any) -> None:
        lora_common.refuse_zero3(ctx, self.name, "reads the LoRA parameters for its penalty")
        super().setup(ctx)
        self.penalties = []

    # -- the penalty ---------------------------------------------------------------------
    def penalty(self, model: Any) -> Any:
        """``lambda/2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2`` over the model's current
        parameters (a 0-dim tensor; exactly zero at the anchor)."""
        import torch

        params = dict(model.named_parameters())
        device = next(iter(params.values())).device
        if self._on_device is None or self._on_device[0] != device:
            moved = [
                ({k: v.to(device) for k, v in f.items()}, {k: v.to(device) for k, v in a.items()})
                for f, a in self.penalties
            ]
            self._on_device = (device, moved)
        total = torch.zeros((), device=device)
        for fisher, anchor in self._on_device[1]:
            for name, f in fisher.items():
                diff = params[name].float() - anchor[name]
                total = total + (f * diff * diff).sum()
        return 0.5 * self.config.ewc_lambda * total

    def training_loss(self, ctx: Any, batch: dict[str, Any], outputs: Any) -> Any:
        if not self.penalties:
            return outputs.loss
        return outputs.loss + self.penalty(ctx.model.model).to(outputs.loss.dtype)

    # -- the Fisher ------------------------------------------------------------------------
    def fisher(self, ctx: Any, samples: Sequence[Sample]) -> dict[str, Any]:
        """Diagonal empirical Fisher of the trainable parameters on ``samples`` (CPU fp32)."""
        import numpy as np
        import torch

        from cvit_bench.harness.engine.distributed import rank_and_world

        c = self.config
        model = ctx.model.model
        adapter = ctx.model
        params = lora_common.named_trainable(model)
        n = len(samples)
        if c.fisher_samples is not None and c.fisher_samples < n:
            rng = np.random.default_rng([ctx.config.seed, ctx.stage, 0xF15E])
            chosen = sorted(int(i) for i in rng.choice(n, c.fisher_samples, replace=False))
        else:
            chosen = list(range(n))
        rank, world = rank_and_world()
        mine = chosen[rank::world]
        device, dtype = lora_common.device_and_dtype(model)
        sums = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in params.items()}
        was_training = model.training
        model.eval()  # no dropout: the Fisher of the model as it predicts
        try:
            for start in range(0, len(mine), c.fisher_batch_size):
                batch = adapter.collate_train(
                    [samples[i] for i in mine[start : start + c.fisher_batch_size]],
                    ctx.config.train.max_length,
                )
                model.zero_grad(set_to_none=True)
                outputs = adapter.forward(model, batch, device, dtype)
                outputs.loss.backward()
                for k, p in params.items():
                    if p.grad is not None:
                        sums[k] += p.grad.detach().float() ** 2
            model.zero_grad(set_to_none=True)
        finally:
            model.train(was_training)
        batches = torch.tensor(
            [float(-(-len(mine) // c.fisher_batch_size))], dtype=torch.float64, device=device
        )
        tensors = list(sums.values()) + [batches]
        lora_common.all_reduce_sum(tensors, world)
        count = max(1.0, float(batches.item()))
        return {k: (v / count).cpu() for k, v in sums.items()}

    def after_task(self, ctx: Any, task: TaskInfo | None, samples: Any) -> None:
        fisher = self.fisher(ctx, list(samples))
        anchor = lora_common.cpu_copy(lora_common.named_trainable(ctx.model.model))
        if self.config.online and self.penalties:
            old, _ = self.penalties[0]
            fisher = {k: self.config.gamma * old[k] + v for k, v in fisher.items()}
            self.penalties = [(fisher, anchor)]
        else:
            self.penalties.append((fisher, anchor))
        self._on_device = None
        super().after_task(ctx, task, samples)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"penalties": self.penalties}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.penalties = list(state.get("penalties", []))
        self._on_device = None

    def costs(self) -> dict[str, Any]:
        stored = sum(v.numel() for f, a in self.penalties for v in (*f.values(), *a.values()))
        return {"stored_samples": 0, "penalty_terms": len(self.penalties), "stored_values": stored}
