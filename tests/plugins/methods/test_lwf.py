from __future__ import annotations

import pytest
import torch
from method_helpers import check_resume, tiny_context, train_stage

from cvit_bench.plugins.methods.lwf.method import LwF, LwFConfig, distillation_loss


def test_targets_come_from_the_frozen_pre_task_model(tmp_path):
    method = LwF(LwFConfig())
    ctx = tiny_context(tmp_path, method, train={"max_steps": 3})
    model, adapter = ctx.model.model, ctx.model
    train_stage(ctx, 1)
    assert method.teacher is None  # nothing to keep on the first task
    batch = adapter.collate_train(list(ctx.benchmark.train_samples("place"))[:4], 2048)
    with torch.no_grad():
        before = adapter.forward(model, batch, "cpu", torch.float32).logits
    ctx.stage = 2
    method.before_task(ctx, ctx.tasks[1])
    # at the start of the task the student is the teacher: the distillation term is zero
    out = adapter.forward(model, batch, "cpu", torch.float32)
    assert float(method.training_loss(ctx, batch, out) - out.loss) == pytest.approx(0, abs=1e-6)
    engine = ctx.extras["engine"]
    samples = list(method.training_samples(ctx, ctx.tasks[1], ctx.benchmark.train_samples("place")))
    engine.train(ctx, ctx.tasks[1], samples)  # the adapter moves ...
    with torch.no_grad():
        after = adapter.forward(model, batch, "cpu", torch.float32).logits
    assert (after - before).abs().max() > 1e-3
    # ... and the targets still are the pre-task model's logits
    torch.testing.assert_close(method.teacher_logits(ctx, batch), before, rtol=1e-5, atol=1e-5)
    out = adapter.forward(model, batch, "cpu", torch.float32)
    assert float(method.training_loss(ctx, batch, out) - out.loss) > 0
    method.after_task(ctx, ctx.tasks[1], samples)
    assert method.teacher is None and method.costs()["stored_samples"] == 0


def test_distillation_is_the_temperature_scaled_kl_over_answer_tokens_only():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    mask = torch.tensor([[False, True, True, False, False], [False, False, False, True, False]])
    T = 2.0
    value = distillation_loss(student, teacher, mask, T)
    p = torch.softmax(teacher[mask] / T, -1)
    by_hand = (p * (p.log() - torch.log_softmax(student[mask] / T, -1))).sum(-1).mean() * T * T
    assert float(value) == pytest.approx(float(by_hand), rel=1e-5)
    changed = teacher.clone()
    changed[~mask] = 100.0  # positions outside the answers do not count
    assert float(distillation_loss(student, changed, mask, T)) == pytest.approx(float(value))
    assert float(distillation_loss(teacher, teacher, mask, T)) == pytest.approx(0, abs=1e-6)
    assert float(distillation_loss(student, teacher, torch.zeros_like(mask), T)) == 0.0


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_matrix(tmp_path):
    check_resume(tmp_path, LwF)
