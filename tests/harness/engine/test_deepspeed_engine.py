from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cvit_bench.harness.engine.deepspeed_engine import (
    CPU_ZERO_SETTINGS,
    DeepSpeedEngine,
    count_steps,
    data_order,
    eval_processes,
    micro_seed,
    train_processes,
    zero_config,
)
from cvit_bench.harness.engine.distributed import free_port
from cvit_bench.harness.errors import UsageError

WORKER = Path(__file__).with_name("engine_worker.py")


def test_data_order_depends_on_seed_and_stage_only():
    a = data_order(10, steps=5, global_batch=4, seed=0, stage=1)
    assert a == data_order(10, steps=5, global_batch=4, seed=0, stage=1)
    assert a != data_order(10, steps=5, global_batch=4, seed=0, stage=2)
    assert a != data_order(10, steps=5, global_batch=4, seed=1, stage=1)
    assert len(a) == 20
    # every epoch is a permutation: the first 10 indices cover every sample once
    assert sorted(a[:10]) == list(range(10))


def test_step_count_from_epochs_or_max_steps():
    assert count_steps(100, global_batch=8, epochs=1.0, max_steps=None) == 13
    assert count_steps(100, global_batch=8, epochs=0.5, max_steps=None) == 7
    assert count_steps(100, global_batch=8, epochs=1.0, max_steps=3) == 3


def test_evaluation_forks_only_where_the_predictions_cannot_change(monkeypatch):
    import torch

    from cvit_bench.harness.protocols import MethodBase

    class Routing(MethodBase):  # an inference hook may keep state a worker would lose
        def inference(self, ctx, batch):
            return super().inference(ctx, batch)

    monkeypatch.setattr("cvit_bench.harness.parallel.usable_cpus", lambda: 2)
    monkeypatch.delenv("CVIT_BENCH_WORKERS", raising=False)
    cpu = torch.device("cpu")
    torch.set_num_threads(1)
    assert eval_processes(None, 1, cpu, 4) == 2
    assert eval_processes(MethodBase(), 1, cpu, 4) == 2
    assert eval_processes(MethodBase(), 1, cpu, 1) == 1  # one batch: nothing to share
    assert eval_processes(Routing(), 1, cpu, 4) == 1
    assert eval_processes(None, 2, cpu, 4) == 1  # ranks share the cores already
    assert eval_processes(None, 1, torch.device("cuda", 0), 4) == 1
    monkeypatch.setenv("CVIT_BENCH_WORKERS", "1")
    assert eval_processes(None, 1, cpu, 4) == 1
    monkeypatch.delenv("CVIT_BENCH_WORKERS")
    torch.set_num_threads(2)  # two threads already take both cores
    try:
        assert eval_processes(None, 1, cpu, 4) == 1
    finally:
        torch.set_num_threads(1)


def test_training_forks_only_where_the_weights_cannot_change(monkeypatch):
    import torch

    from cvit_bench.harness.config import TrainConfig
    from cvit_bench.harness.protocols import MethodBase

    class ExtraLoss(MethodBase):
        def training_loss(self, ctx, batch, outputs):
            return outputs.loss * 2

    monkeypatch.setattr("cvit_bench.harness.parallel.usable_cpus", lambda: 2)
    monkeypatch.delenv("CVIT_BENCH_WORKERS", raising=False)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    accum = TrainConfig(grad_accum=2)
    assert train_processes(None, 1, cpu, accum) == 2
    assert train_processes(MethodBase(), 1, cpu, TrainConfig(grad_accum=4)) == 2  # two cores
    assert train_processes(MethodBase(), 1, cpu, TrainConfig(grad_accum=1)) == 1  # one part
    assert train_processes(ExtraLoss(), 1, cpu, accum) == 1
    assert train_processes(None, 2, cpu, accum) == 1  # ranks share the cores already
    assert train_processes(None, 1, torch.device("cuda", 0), accum) == 1
    assert train_processes(None, 1, cpu, TrainConfig(grad_accum=2, zero_stage=2)) == 1
    assert train_processes(None, 1, cpu, TrainConfig(grad_accum=2, precision="bf16")) == 1
    monkeypatch.setattr("cvit_bench.harness.parallel.can_fork", lambda: False)
    assert train_processes(None, 1, cpu, accum) == 1
    monkeypatch.undo()
    monkeypatch.setenv("CVIT_BENCH_WORKERS", "1")
    assert train_processes(None, 1, cpu, accum) == 1
    # a micro-batch's dropout seed is its place in the run, nothing else
    assert micro_seed(7, 3, 1) == micro_seed(7, 3, 1)
    assert (
        len({micro_seed(7, 3, 1), micro_seed(7, 3, 0), micro_seed(7, 4, 1), micro_seed(8, 3, 1)})
        == 4
    )


def test_shipped_zero_configs():
    gpu = zero_config(2, cuda=True)
    assert gpu["stage"] == 2 and gpu["overlap_comm"] and gpu["contiguous_gradients"]
    assert zero_config(3, cuda=True)["stage"] == 3
    assert zero_config(0) == {"stage": 0}
    # on a CPU, ZeRO-1/2 drop what only pays with CUDA streams and GPU memory
    cpu = zero_config(2, cuda=False)
    assert cpu == {**gpu, **CPU_ZERO_SETTINGS} and not cpu["overlap_comm"]
    assert zero_config(3, cuda=False) == zero_config(3, cuda=True)


def _ctx(tmp_path, overrides):
    from cvit_bench.plugins.methods.seqlora.method import SeqLoRA, SeqLoRAConfig
    from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
    from cvit_bench.testing.toy import ToyBenchmark, make_context

    bench = ToyBenchmark(n_train=8, n_eval=4)
    model = TinyLlava(TinyLlavaConfig(pretrain_steps=0))
    method = SeqLoRA(SeqLoRAConfig(rank=4))
    ctx = make_context(tmp_path, bench, model, method, overrides)
    bench.prepare(ctx)
    model.build(ctx)
    method.setup(ctx)
    return ctx


def test_projector_trains_in_its_own_group_at_its_own_rate(tmp_path):
    ctx = _ctx(tmp_path, {"train": {"lr": 1e-3, "projector_lr": 2e-5}})
    engine = DeepSpeedEngine(ctx.model)
    groups = engine.param_groups(ctx)
    names = {id(p): n for n, p in ctx.model.model.named_parameters()}
    assert [g["lr"] for g in groups] == [1e-3, 2e-5]
    assert all("lora_" in names[id(p)] for p in groups[0]["params"])
    assert groups[1]["params"] and all(
        "multi_modal_projector" in names[id(p)] for p in groups[1]["params"]
    )
    # without a projector rate the projector stays frozen
    ctx = _ctx(tmp_path / "b", {"train": {"lr": 1e-3}})
    groups = DeepSpeedEngine(ctx.model).param_groups(ctx)
    assert len(groups) == 1
    assert not any(
        p.requires_grad
        for p in ctx.model.model.base_model.model.model.multi_modal_projector.parameters()
    )


def test_deepspeed_config_from_run_config_and_user_file(tmp_path):
    ctx = _ctx(tmp_path, {"train": {"batch_size": 4, "grad_accum": 3, "zero_stage": 2}})
    engine = DeepSpeedEngine(ctx.model)
    config = engine.deepspeed_config(ctx, world_size=2)
    assert config["train_batch_size"] == 24
    assert config["zero_optimization"]["stage"] == 2
    assert config["optimizer"]["params"]["torch_adam"] is True
    assert config["bf16"]["enabled"] is False  # fp32 on a CPU
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"zero_optimization": {"overlap_comm": True}}))
    ctx.config.train.deepspeed_config = str(user)
    merged = engine.deepspeed_config(ctx, world_size=1)
    assert merged["zero_optimization"] == {**zero_config(2), "overlap_comm": True}
    ctx.config.train.deepspeed_config = str(tmp_path / "missing.json")
    with pytest.raises(UsageError, match="missing.json"):
        engine.deepspeed_config(ctx, world_size=1)


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = "1"
    return env


def _worker(command: list[str], workers: int | None = None) -> None:
    """Run an engine worker command; on failure, fail with the end of its output.
    ``workers`` sets ``CVIT_BENCH_WORKERS``."""
    env = _clean_env()
    if workers is not None:
        env["CVIT_BENCH_WORKERS"] = str(workers)
    done = subprocess.run(command, env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"{' '.join(command[:6])} ... exited {done.returncode}:\n"
        f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )


@pytest.mark.slow
def test_two_processes_through_torchrun_match_one_process(tmp_path):
    """Same data order and global batch (4): one process accumulating two micro-batches of 2
    under ZeRO-0, and two processes with one micro-batch of 2 each under ZeRO-2, train the same
    weights and give the same predictions (evaluation sharded over the two ranks and gathered)."""
    common = ["--root", str(tmp_path), "--batch", "2", "--steps", "6", "--eval-batch", "3"]
    single, double = tmp_path / "single.json", tmp_path / "double.json"
    _worker(
        [sys.executable, str(WORKER), *common, "--accum", "2", "--zero", "0", "--out", str(single)]
    )
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
    ]
    _worker([*launcher, str(WORKER), *common, "--accum", "1", "--zero", "2", "--out", str(double)])
    a, b = json.loads(single.read_text()), json.loads(double.read_text())
    assert (a["world"], b["world"]) == (1, 2)
    assert a["global_batch"] == b["global_batch"] == 4
    assert a["losses"] == pytest.approx(b["losses"], rel=1e-5)
    assert a["losses"][-1] < a["losses"][0]  # it trained
    assert a["weights"].keys() == b["weights"].keys() and len(a["weights"]) > 0
    for name, value in a["weights"].items():
        assert value == pytest.approx(b["weights"][name], rel=1e-5, abs=1e-6), name
    assert a["predictions"] == b["predictions"]
    assert len(a["predictions"]) == 10


@pytest.mark.slow
def test_gradient_checkpointing_and_projector_training_through_the_engine(tmp_path):
    """Recomputing activations changes memory, not results; the projector trains in its group."""
    common = ["--root", str(tmp_path), "--batch", "2", "--steps", "4", "--projector-lr", "1e-3"]
    plain, ckpt = tmp_path / "plain.json", tmp_path / "ckpt.json"
    for out, extra in ((plain, []), (ckpt, ["--gradient-checkpointing"])):
        _worker([sys.executable, str(WORKER), *common, *extra, "--out", str(out)])
    a, b = json.loads(plain.read_text()), json.loads(ckpt.read_text())
    assert a["losses"] == pytest.approx(b["losses"], rel=1e-6)
    assert a["predictions"] == b["predictions"]
    assert any("multi_modal_projector" in name for name in a["weights"])


@pytest.mark.slow
def test_zero3_trains_task_after_task_like_zero0(tmp_path):
    """ZeRO-3 partitions the whole model while a task trains; after it the model is whole
    again, so the next task's set-up, evaluation and the weights are those of ZeRO-0 (where
    DeepSpeed sees only the trainable parameters). The frozen base stays as it was."""
    common = ["--root", str(tmp_path), "--batch", "2", "--steps", "3", "--stages", "2"]
    runs = {}
    for zero in (0, 3):
        out = tmp_path / f"zero{zero}.json"
        _worker([sys.executable, str(WORKER), *common, "--zero", str(zero), "--out", str(out)])
        runs[zero] = json.loads(out.read_text())
    a, b = runs[0], runs[3]
    assert len(a["losses"]) == 6 and a["losses"] == pytest.approx(b["losses"], rel=1e-5)
    assert a["weights"].keys() == b["weights"].keys() and len(a["weights"]) > 0
    for name, value in a["weights"].items():
        assert value == pytest.approx(b["weights"][name], rel=1e-5, abs=1e-6), name
    assert a["predictions"] == b["predictions"]
    for run in (a, b):
        assert run["frozen_after"] == run["frozen_before"] != 0
        assert any(v != 0 for k, v in run["weights"].items() if "lora_B" in k)  # it trained


@pytest.mark.slow
def test_micro_batches_in_forked_processes_train_the_same_weights_as_one_process(tmp_path):
    """A step's micro-batches computed in two processes (this one and a forked worker) train the
    very same weights, bit for bit, as one process computing them in turn: for two micro-batches,
    and for three with dropout on and this process slowed down, so the worker has finished
    both of its micro-batches before this process adds the first; over two tasks, as a run
    trains them."""
    common = ["--root", str(tmp_path), "--batch", "2", "--steps", "4", "--stages", "2"]
    runs = {}
    for accum, extra in (("2", []), ("3", ["--dropout", "0.3"])):
        for workers in (1, 2):
            name = f"a{accum}w{workers}"
            pids = tmp_path / f"{name}.pids"
            slow = ["--slow-parent"] if workers == 2 and accum == "3" else []
            out = tmp_path / f"{name}.json"
            command = [sys.executable, str(WORKER), *common, "--accum", accum, *extra, *slow]
            _worker([*command, "--pids", str(pids), "--out", str(out)], workers=workers)
            runs[name] = json.loads(out.read_text())
            runs[name]["pids"] = set(pids.read_text().split())
    for accum in ("2", "3"):
        one, two = runs[f"a{accum}w1"], runs[f"a{accum}w2"]
        assert one["processes"] == [1, 1] and len(one["pids"]) == 1
        assert two["processes"] == [2, 2]
        assert len(two["pids"]) == 3  # this process and one worker per task
        assert two["weights_sha"] == one["weights_sha"], f"grad_accum {accum}"
        assert two["losses"] == one["losses"]
        assert two["predictions"] == one["predictions"]
        assert one["losses"][-1] < one["losses"][0]  # it trained
    # dropout on and three micro-batches a step: other weights than the first pair's
    assert runs["a3w1"]["weights_sha"] != runs["a2w1"]["weights_sha"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["raise", "die", "data"])
def test_a_failing_training_worker_stops_the_task_with_what_happened(tmp_path, how):
    out = tmp_path / "out.json"
    command = [sys.executable, str(WORKER), "--root", str(tmp_path), "--batch", "2"]
    _worker([*command, "--accum", "2", "--steps", "3", "--fail", how, "--out", str(out)], 2)
    result = json.loads(out.read_text())
    assert result["children"] == 0  # no worker left behind
    if how == "data":  # a missing image is reported as it is, wherever it was read
        assert result["type"] == "DataError"
        assert result["error"] == "image missing: /data/train/0001.png (sample 1 of task a)"
        return
    assert result["type"] == "CvitError"
    if how == "die":
        assert "training worker process 1 died (exit code 7)" in result["error"]
    else:
        assert "training worker process 1 failed" in result["error"]
        assert "the worker's forward pass broke" in result["error"]
    assert "CVIT_BENCH_WORKERS=1 trains in this process" in result["error"]
