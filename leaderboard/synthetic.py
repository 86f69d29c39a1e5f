"""Fake but valid run directories, written with the harness's own result-file writer.

For measuring and developing the leaderboard without training anything::

    python -m cvit_bench.leaderboard.synthetic OUT_DIR --runs 1000 --tasks 8

Every run holds what the protocol runner writes (``run.json``, ``config.yaml``,
``matrix.arrow``, ``stages.arrow``, ``summary.arrow``, ``predictions/``) with provenance in the
Arrow metadata. Scores follow a simple model of learning and forgetting, and every matrix cell
equals the mean of its per-sample scores, so drill-down pages agree with the heat map. The
numbers mean nothing: never publish them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvit_bench.harness.io import atomic_write_json, atomic_write_text
from cvit_bench.harness.metrics import continual_metrics
from cvit_bench.harness.results import SCHEMA_VERSION, prediction_path, write_table

TASK_NAMES = ("colour", "shape", "count", "position", "ocr", "size", "texture", "grounding")

METHODS: dict[str, dict[str, Any]] = {
    # name: (plasticity, stability, stored samples, trainable params, needs task identity)
    "seqlora": {"plastic": 0.92, "stable": 0.55, "stored": 0, "params": 4_194_304, "tid": False},
    "replay": {"plastic": 0.90, "stable": 0.80, "stored": 400, "params": 4_194_304, "tid": False},
    "ewc": {"plastic": 0.85, "stable": 0.72, "stored": 0, "params": 4_194_304, "tid": False},
    "lwf": {"plastic": 0.86, "stable": 0.70, "stored": 0, "params": 4_194_304, "tid": False},
    "olora": {"plastic": 0.84, "stable": 0.78, "stored": 0, "params": 4_194_304, "tid": False},
    "moelora": {"plastic": 0.91, "stable": 0.66, "stored": 0, "params": 16_777_216, "tid": False},
    "hide": {"plastic": 0.90, "stable": 0.86, "stored": 0, "params": 33_554_432, "tid": False},
    "taskexpert": {"plastic": 0.93, "stable": 0.97, "stored": 0, "params": 33_554_432, "tid": True},
}

MODELS = {
    "tiny-llava": {"skill": 0.9, "mem_mb": 900.0, "start": "pretrained-projector"},
    "llava-1.5-7b": {"skill": 1.0, "mem_mb": 38_000.0, "start": "v15p"},
    "qwen2-vl-2b": {"skill": 0.96, "mem_mb": 14_000.0, "start": "instruct"},
}


@dataclass
class FakeRunSpec:
    """What one synthetic run looks like."""

    method: str = "seqlora"
    model: str = "tiny-llava"
    seed: int = 0
    lr: float = 2e-4
    bench: str = "synthetic"
    bench_version: str = "1"
    scoring_mode: str = "published"
    tasks: Sequence[str] = TASK_NAMES
    samples: int = 20
    eval_on: str = "all"
    finished: bool = True
    dirty: bool = False
    published: bool = True
    tags: list[str] = field(default_factory=list)
    schedule: str = "sequential"
    identity: dict[str, Any] | None = None  # the benchmark identity (default: name, version, mode)
    bench_args: dict[str, Any] | None = None  # the benchmark options recorded in the config


def _rng(spec: FakeRunSpec) -> random.Random:
    key = json.dumps([spec.method, spec.model, spec.seed, spec.lr, list(spec.tasks)])
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))


def fake_matrix(spec: FakeRunSpec) -> tuple[list[float], list[list[float]]]:
    """``(zero_shot, rows)`` of plausible scores (0-100) before sampling noise."""
    rng = _rng(spec)
    m = METHODS.get(spec.method, METHODS["seqlora"])
    skill = MODELS.get(spec.model, {"skill": 0.9})["skill"]
    lr_effect = 1.0 - 0.08 * abs(math.log10(spec.lr / 2e-4))
    T = len(spec.tasks)
    ease = [0.55 + 0.4 * rng.random() for _ in range(T)]
    zero = [100 * e * 0.25 * rng.uniform(0.6, 1.2) for e in ease]
    rows = []
    for t in range(1, T + 1):
        row = []
        for j in range(1, T + 1):
            learned = 100 * ease[j - 1] * m["plastic"] * skill * lr_effect
            if j == t:
                v = learned
            elif j < t:
                keep = m["stable"] ** ((t - j) ** 0.7)
                v = zero[j - 1] + (learned - zero[j - 1]) * keep
            else:
                v = zero[j - 1] + 3.0 * rng.random()
            row.append(min(max(v + rng.gauss(0, 2.0), 0.0), 100.0))
        rows.append(row)
    return zero, rows


def write_fake_run(run_dir: str | Path, spec: FakeRunSpec) -> Path:
    """Write one run directory as the protocol runner would; returns it."""
    run_dir = Path(run_dir)
    rng = _rng(spec)
    tasks = list(spec.tasks)
    T = len(tasks)
    zero, rows = fake_matrix(spec)
    m = METHODS.get(spec.method, METHODS["seqlora"])
    model = MODELS.get(spec.model, {"skill": 0.9, "mem_mb": 1000.0, "start": "scratch"})
    config = {
        "method": spec.method,
        "bench": spec.bench,
        "model": spec.model,
        "seed": spec.seed,
        "order": None,
        "data_root": None,
        "cache_dir": None,
        "tags": list(spec.tags),
        "train": {"epochs": 1.0, "lr": spec.lr, "batch_size": 8},
        "eval": {
            "eval_on": spec.eval_on,
            "batch_size": 16,
            "max_new_tokens": None,
            "zero_shot": True,
        },
        "method_args": {},
        "bench_args": dict(spec.bench_args)
        if spec.bench_args is not None
        else {"scoring_mode": spec.scoring_mode},
        "model_args": {},
    }
    blob = json.dumps(
        {k: v for k, v in config.items() if k not in ("tags", "cache_dir")}, sort_keys=True
    )
    identity = hashlib.sha256(blob.encode()).hexdigest()[:16]
    day, hour, minute = 1 + spec.seed % 28, rng.randrange(24), rng.randrange(60)
    started = f"2026-01-{day:02d}T{hour:02d}:{minute:02d}:00+00:00"
    provenance = {
        "schema_version": SCHEMA_VERSION,
        "cvit_bench_version": "0.1.0",
        "api_version": "1.0",
        "method": {
            "name": spec.method,
            "distribution": "cvit-bench",
            "version": "0.1.0",
            "plugin": spec.method,
        },
        "benchmark": {
            "name": spec.bench,
            "distribution": "cvit-bench",
            "version": "0.1.0",
            "plugin": spec.bench,
        },
        "model": {
            "name": spec.model,
            "distribution": "cvit-bench",
            "version": "0.1.0",
            "plugin": spec.model,
        },
        "benchmark_identity": dict(spec.identity)
        if spec.identity is not None
        else {"name": spec.bench, "version": spec.bench_version, "scoring_mode": spec.scoring_mode},
        "model_source": {
            "source": f"synthetic/{spec.model}",
            "revision": "0",
            "starting_point": model["start"],
        },
        "method_requirements": {
            "task_identity_at_inference": m["tid"],
            "stores_samples": m["stored"] > 0,
            "per_task_parameters": m["params"] > 4_194_304,
            "inference": "routing over task experts" if m["tid"] else "",
        },
        "schedule": spec.schedule,
        "eval_on": spec.eval_on,
        "seed": spec.seed,
        "tasks": tasks,
        "tags": list(spec.tags),
        "git": {"commit": "0" * 40, "dirty": spec.dirty},
        "hardware": {
            "platform": "synthetic",
            "python": "3.11",
            "machine": "x86_64",
            "cpu_count": 2,
        },
        "config_identity": identity,
        "command": "synthetic",
        "started": started,
    }
    stages = [0] + list(range(1, T + 1))
    if not spec.finished:
        stages = stages[: max(2, len(stages) // 2)]
    matrix_rows: list[dict[str, Any]] = []
    stage_rows: list[dict[str, Any]] = []
    scored: dict[tuple[int, int], float] = {}
    for stage in stages:
        trained = tasks[stage - 1] if stage else ""
        evaluated = range(T) if stage == 0 or spec.eval_on == "all" else range(stage)
        for j in evaluated:
            target = zero[j] if stage == 0 else rows[stage - 1][j]
            preds = []
            correct = round(target / 100 * spec.samples)
            right = set(rng.sample(range(spec.samples), correct))
            for i in range(spec.samples):
                answer = f"answer {i % 5}"
                ok = i in right
                preds.append(
                    {
                        "id": str(i),
                        "id_is_int": True,
                        "prompt": f"What is the {tasks[j]} of the object in image {i}?",
                        "prediction": answer if ok else f"answer {(i + 1) % 5}",
                        "reference": answer,
                        "score": 100.0 if ok else 0.0,
                    }
                )
            write_table(prediction_path(run_dir, stage, tasks[j]), "predictions", preds, provenance)
            value = 100.0 * correct / spec.samples
            scored[(stage, j)] = value
            matrix_rows.append(
                {
                    "stage": stage,
                    "trained_task": trained,
                    "eval_task": tasks[j],
                    "eval_index": j + 1,
                    "metric": "accuracy",
                    "value": value,
                    "primary": True,
                    "n": spec.samples,
                    "not_scored": None,
                }
            )
        wall = (0.0 if stage == 0 else 40.0 * model["mem_mb"] ** 0.3) + 6.0 * T
        stage_rows.append(
            {
                "stage": stage,
                "trained_task": trained,
                "wall_s": wall * rng.uniform(0.9, 1.1),
                "train_s": wall - 6.0 * T,
                "eval_s": 6.0 * T,
                "steps": 0 if stage == 0 else 50,
                "train_samples": 0 if stage == 0 else 400,
                "loss": None if stage == 0 else 1.5 * rng.random(),
                "trainable_params": 0 if stage == 0 else m["params"],
                "peak_mem_mb": model["mem_mb"] * rng.uniform(0.95, 1.05),
                "stored_samples": min(stage * 50, m["stored"]),
                "method_costs": json.dumps({"stored_samples": min(stage * 50, m["stored"])}),
            }
        )
    write_table(run_dir / "matrix.arrow", "matrix", matrix_rows, provenance)
    write_table(run_dir / "stages.arrow", "stages", stage_rows, provenance)
    info = {
        "config_identity": identity,
        "config": config,
        "tasks": tasks,
        "task_info": [
            {
                "name": t,
                "primary_metric": "accuracy",
                "max_new_tokens": 16,
                "description": f"synthetic {t} questions",
            }
            for t in tasks
        ],
        "schedule": spec.schedule,
        "finished_stages": stages,
        "status": "finished" if spec.finished else "running",
        "created": started,
        "stage_wall_s": {str(r["stage"]): r["wall_s"] for r in stage_rows},
    }
    if spec.finished:
        full = [[scored.get((t, j), math.nan) for j in range(T)] for t in range(1, T + 1)]
        summary = continual_metrics(full, [scored[(0, j)] for j in range(T)])
        write_table(
            run_dir / "summary.arrow",
            "summary",
            [{"metric": k, "value": v} for k, v in summary.items()],
            provenance,
        )
        info["finished"] = started
    import yaml

    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(run_dir / "run.json", info)
    if spec.published:
        atomic_write_json(
            run_dir / "publish.json",
            {"published": started, "published_with": "synthetic", "config_identity": identity},
        )
    return run_dir


def specs(
    n_runs: int, n_tasks: int = 8, samples: int = 20, seeds: int = 5, flagged_every: int = 0
) -> list[FakeRunSpec]:
    """``n_runs`` runs over methods x models x learning rates x seeds (``seeds`` per
    configuration); with ``flagged_every`` > 0, every so many runs is dirty or incomplete."""
    tasks = [
        TASK_NAMES[i % len(TASK_NAMES)]
        + (f"-{i // len(TASK_NAMES) + 1}" if i >= len(TASK_NAMES) else "")
        for i in range(n_tasks)
    ]
    out: list[FakeRunSpec] = []
    lrs = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2]
    i = 0
    while len(out) < n_runs:
        config = i // seeds
        method = list(METHODS)[config % len(METHODS)]
        model = list(MODELS)[(config // len(METHODS)) % len(MODELS)]
        lr = lrs[(config // (len(METHODS) * len(MODELS))) % len(lrs)]
        extra = config // (len(METHODS) * len(MODELS) * len(lrs))
        flag = flagged_every and i % flagged_every == flagged_every - 1
        out.append(
            FakeRunSpec(
                method=method,
                model=model,
                seed=i % seeds + 100 * extra,
                lr=lr,
                tasks=tasks,
                samples=samples,
                tags=["synthetic", f"lr={lr:g}"],
                dirty=bool(flag and i % 2 == 0),
                finished=not (flag and i % 2 == 1),
            )
        )
        i += 1
    return out


def generate(
    out: str | Path,
    n_runs: int,
    n_tasks: int = 8,
    samples: int = 20,
    seeds: int = 5,
    flagged_every: int = 0,
) -> list[Path]:
    """Write ``n_runs`` synthetic run directories under ``out``; returns them."""
    out = Path(out)
    dirs = []
    for k, spec in enumerate(specs(n_runs, n_tasks, samples, seeds, flagged_every)):
        name = f"{k:05d}-{spec.method}-{spec.model}-lr{spec.lr:g}-seed{spec.seed}"
        dirs.append(write_fake_run(out / spec.bench / name, spec))
    return dirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="folder to write the run directories into")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--samples", type=int, default=20, help="eval samples per task")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per configuration")
    parser.add_argument(
        "--flagged-every", type=int, default=0, help="make every N-th run dirty or incomplete"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    dirs = generate(args.out, args.runs, args.tasks, args.samples, args.seeds, args.flagged_every)
    print(f"wrote {len(dirs)} runs under {args.out} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
