"""``lwf``: learning without forgetting (Li and Hoiem, 2016) for instruction tuning.

One LoRA adapter trains task after task, as in ``seqlora``. Before task ``t`` (from the second
task on) the trainable parameters are copied: that snapshot *is* the model as it stands before
the task. During training each batch also runs, without gradients, through the same network
with the snapshot's values (``torch.func.functional_call``: nothing is modified in place, so
the student's graph is untouched), and the loss gains

    distill_weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

averaged over the answer tokens (the positions whose labels are not ignored), with the
temperature ``T``. The teacher's targets are therefore exactly what the pre-task model predicts
on the new task's inputs; nothing of past tasks is stored, and the snapshot (one adapter's
size) is rebuilt from the stage checkpoint when a run resumes.

The teacher pass reads parameters outside the engine, so ZeRO-3 is refused.

Defaults. No LwF setting for LLaVA-1.5-7B was ever published (METHODS.md: classic CL, no public
LLaVA code). ``T = 2`` and a distillation weight of 1 are the values of the LwF paper; the LoRA
settings are ``seqlora``'s (r=16, alpha=32, MCITlib LoRA-FT). On the first task there is no past
to keep, so no distillation (``distill_first_task`` turns it on against the starting point).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvit_bench.harness import config_field
from cvit_bench.harness.types import MethodRequirements, TaskInfo
from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA


@dataclass
class LwFConfig(lora_common.LoRAOptions):
    temperature: float = config_field(2.0, help="distillation temperature T")
    distill_weight: float = config_field(
        1.0, help="weight of the distillation term next to the task loss"
    )
    distill_first_task: bool = config_field(
        False, help="distil on the first task too (against the starting point)"
    )

    merge_after_task = False


def distillation_loss(
    student_logits: Any, teacher_logits: Any, mask: Any, temperature: float
) -> Any:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))`` averaged over the ``mask``ed
    positions (``[B, S]`` booleans over the logits' positions)."""
    import torch
    import torch.nn.functional as F

    if not bool(mask.any()):
        return student_logits.sum() * 0.0
    s = student_logits[mask].float() / temperature
    t = teacher_logits[mask].float() / temperature
    kl = F.kl_div(
        F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="none"
    ).sum(-1)
    return kl.mean() * temperature**2 + torch.zeros((), device=kl.device)


class LwF(SeqLoRA):
    name = "lwf"
    config_class = LwFConfig
    requirements = MethodRequirements(model_features=("lora",))
    schedule = "sequential"

    def __init__(self, config: LwFConfig | None = None) -> None:
        super().__init__(config or LwFConfig())
        self.teacher: dict[str, Any] | None = None  # the pre-task values of the trainable params

    def setup(self, ctx: Any) -> None:
        lora_common.refuse_zero3(ctx, self.name, "runs the pre-task model outside the engine")
        super().setup(ctx)

    def before_task(self, ctx: Any, task: TaskInfo) -> None:
        super().before_task(ctx, task)
        if ctx.task_index == 0 and not self.config.distill_first_task:
            self.teacher = None
            return
        params = lora_common.named_trainable(ctx.model.model)
        self.teacher = {k: p.detach().clone() for k, p in params.items()}

    def teacher_logits(self, ctx: Any, batch: dict[str, Any]) -> Any:
        """The pre-task model's logits on ``batch`` (no gradient)."""
        import torch
        from torch.func import functional_call

        model = ctx.model.model
        device, dtype = lora_common.device_and_dtype(model)
        params = dict(model.named_parameters())
        snapshot = {
            k: v.to(device=params[k].device, dtype=params[k].dtype) for k, v in self.teacher.items()
        }
        inputs = ctx.model.model_inputs(batch, device, dtype)
        inputs.pop("labels", None)
        with torch.no_grad():
            out = functional_call(model, snapshot, args=(), kwargs={**inputs, "use_cache": False})
        return out.logits

    def training_loss(self, ctx: Any, batch: dict[str, Any], outputs: Any) -> Any:
        if self.teacher is None or self.config.distill_weight == 0:
            return outputs.loss
        teacher = self.teacher_logits(ctx, batch)
        labels = batch["labels"].to(outputs.logits.device)
        mask = lora_common.answer_mask(labels)
        kd = distillation_loss(
            outputs.logits[:, :-1], teacher[:, :-1], mask, self.config.temperature
        )
        return outputs.loss + self.config.distill_weight * kd.to(outputs.loss.dtype)

    def after_task(self, ctx: Any, task: TaskInfo | None, samples: Any) -> None:
        self.teacher = None
        super().after_task(ctx, task, samples)

    def costs(self) -> dict[str, Any]:
        return {"stored_samples": 0}
