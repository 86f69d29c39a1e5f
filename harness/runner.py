"""The continual protocol runner: zero-shot stage, then train -> evaluate -> checkpoint per task.

Every finished stage is committed to the run directory (predictions, matrix, costs, checkpoint,
then ``run.json`` last, each written atomically). Re-running the same configuration on the same
directory resumes at the first unfinished stage: a process killed in the middle of a stage loses
only that stage. A directory that holds a different configuration is refused, not overwritten.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import results as results_io
from .capabilities import check_compatible
from .config import RunConfig, build_dataclass
from .errors import DataError, RunDirError, UsageError
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text
from .plugins import PluginManager, get_plugin_manager
from .protocols import RunContext
from .types import Prediction, Sample, TaskInfo, TaskScore


def default_cache_dir(config: RunConfig) -> Path:
    if config.cache_dir:
        return Path(config.cache_dir).expanduser()
    env = os.environ.get("CVIT_BENCH_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cvit-bench"


def default_run_dir(config: RunConfig, model: str) -> Path:
    return Path("runs") / config.bench / f"{config.method}-{model}-seed{config.seed}"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when it is already imported) torch."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def stage_seed(seed: int, stage: int) -> int:
    return seed * 1_000_003 + stage


class Runner:
    """Runs one configuration in one run directory."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path | None = None,
        manager: PluginManager | None = None,
        progress: bool = True,
    ):
        self.manager = manager or get_plugin_manager()
        self.progress = progress
        # validate programmatic configs too (sections given as plain dicts, wrong types)
        config = build_dataclass(RunConfig, dataclasses.asdict(config), "config")
        self.method_cls = self.manager.method(config.method)
        self.bench_cls = self.manager.benchmark(config.bench)
        model_name = config.model or getattr(self.bench_cls, "reference_model", None)
        if not model_name:
            raise UsageError(
                f"benchmark {config.bench!r} names no reference model: "
                "pass --model (see 'cvit-bench list models')"
            )
        self.model_entry = self.manager.registry("models").get(model_name)
        self.model_cls = self.model_entry.load()
        # Validate every plugin's options before anything touches the disk, and record the
        # resolved options (defaults filled in) so the config identity covers them.
        self.method_config = build_dataclass(
            self.method_cls.config_class, config.method_args, f"method_args ({config.method})"
        )
        self.bench_config = build_dataclass(
            self.bench_cls.config_class, config.bench_args, f"bench_args ({config.bench})"
        )
        self.model_config = build_dataclass(
            self.model_cls.config_class, config.model_args, f"model_args ({model_name})"
        )
        check_compatible(
            config.method, self.method_cls, self.model_entry.name, self.model_cls, self.model_config
        )
        self.config = dataclasses.replace(
            config,
            model=self.model_entry.name,
            method_args=_asdict(self.method_config),
            bench_args=_asdict(self.bench_config),
            model_args=_asdict(self.model_config),
        )
        self.run_dir = (
            Path(run_dir) if run_dir else default_run_dir(self.config, self.model_entry.name)
        )
        self.benchmark = self.bench_cls(self.bench_config)
        self.schedule = getattr(self.method_cls, "schedule", "sequential")
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))

    # -- planning ---------------------------------------------------------------------------
    def task_order(self) -> list[TaskInfo]:
        """The benchmark's tasks in the configured order (a permutation of the published one)."""
        tasks = self.benchmark.tasks()
        by_name = {t.name: t for t in tasks}
        if not self.config.order:
            return list(tasks)
        order = list(self.config.order)
        unknown = [n for n in order if n not in by_name]
        if unknown:
            raise UsageError(
                f"--order names unknown task(s) {unknown} of benchmark "
                f"{self.config.bench!r}; its tasks are {list(by_name)}"
            )
        if sorted(order) != sorted(by_name) or len(set(order)) != len(order):
            raise UsageError(
                f"--order must list each of the {len(by_name)} tasks exactly once "
                f"(a permutation of {list(by_name)}), got {order}"
            )
        return [by_name[n] for n in order]

    def stages(self, n_tasks: int) -> list[int]:
        first = [0] if self.config.eval.zero_shot or self.schedule == "none" else []
        if self.schedule == "sequential":
            return first + list(range(1, n_tasks + 1))
        if self.schedule == "joint":
            return first + [1]
        return [0]

    def eval_tasks(self, stage: int, tasks: list[TaskInfo]) -> list[TaskInfo]:
        if stage == 0 or self.schedule != "sequential" or self.config.eval.eval_on == "all":
            return tasks
        return tasks[:stage]

    def plan(self) -> dict[str, Any]:
        """What ``run`` would do, touching nothing (``--dry-run``)."""
        tasks = self.task_order()
        stages = self.stages(len(tasks))
        done = self._finished_stages() if (self.run_dir / "run.json").exists() else []
        general = self.general_stages(len(tasks))
        steps = []
        for stage in stages:
            trained = self._trained_name(stage, tasks)
            steps.append(
                {
                    "stage": stage,
                    "train": trained,
                    "evaluate": [t.name for t in self.eval_tasks(stage, tasks)],
                    "general": list(self.config.eval.general_tasks) if stage in general else [],
                    "status": "done" if stage in done else "to do",
                }
            )
        return {
            "run_dir": str(self.run_dir),
            "config": self.config.to_dict(),
            "config_identity": self.config.identity(),
            "method": self.config.method,
            "schedule": self.schedule,
            "tasks": [t.name for t in tasks],
            "stages": steps,
        }

    def _trained_name(self, stage: int, tasks: list[TaskInfo]) -> str:
        if stage == 0:
            return ""
        if self.schedule == "joint":
            return "joint"
        return tasks[stage - 1].name

    # -- the run directory ------------------------------------------------------------------
    def _info_path(self) -> Path:
        return self.run_dir / "run.json"

    def _read_info(self) -> dict[str, Any]:
        try:
            return json.loads(self._info_path().read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(
                f"{self._info_path()} is corrupt ({exc}); move the directory "
                "away or pass another --out"
            ) from None

    def _finished_stages(self) -> list[int]:
        return list(self._read_info().get("finished_stages", []))

    def _claim_run_dir(self, tasks: list[TaskInfo]) -> dict[str, Any]:
        identity = self.config.identity()
        if self.rank != 0:
            return self._wait_for_rank0(identity)
        if self._info_path().exists():
            info = self._read_info()
            if info.get("config_identity") != identity:
                theirs = info.get("config", {})
                diffs = _config_diff(theirs, self.config.to_dict())
                raise RunDirError(
                    f"{self.run_dir} holds a run with a different configuration "
                    f"({'; '.join(diffs[:6]) or 'identity differs'}); it is not overwritten. "
                    "Pass another --out, or re-run with the same configuration to resume it."
                )
            if info.get("tasks") != [t.name for t in tasks]:
                raise RunDirError(
                    f"{self.run_dir} was run with tasks {info.get('tasks')}, "
                    f"now the benchmark gives {[t.name for t in tasks]}"
                )
            return info
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise RunDirError(
                f"{self.run_dir} exists and is not a cvit-bench run directory; "
                "refusing to write into it"
            )
        info = {
            "config_identity": identity,
            "config": self.config.to_dict(),
            "tasks": [t.name for t in tasks],
            "task_info": [dataclasses.asdict(t) for t in tasks],
            "schedule": self.schedule,
            "finished_stages": [],
            "status": "running",
            "created": _now(),
            "stage_wall_s": {},
        }
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            import yaml

            atomic_write_text(
                self.run_dir / "config.yaml", yaml.safe_dump(self.config.to_dict(), sort_keys=False)
            )
            atomic_write_json(self._info_path(), info)
        return info

    def _wait_for_rank0(self, identity: str, timeout_s: float = 600.0) -> dict[str, Any]:
        """Other ranks read the run directory rank 0 has claimed (a file-based barrier)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._info_path().exists():
                try:
                    info = json.loads(self._info_path().read_text())
                except json.JSONDecodeError:
                    info = {}
                if info.get("config_identity") == identity:
                    return info
            time.sleep(0.2)
        raise RunDirError(
            f"rank {self.rank}: rank 0 did not set up {self.run_dir} within "
            f"{timeout_s:.0f} s (did it fail? see its output)"
        )

    # -- the run ----------------------------------------------------------------------------
    def general_stages(self, n_tasks: int) -> list[int]:
        """The stages after which ``eval.general_tasks`` are scored (none without tasks)."""
        cfg = self.config.eval
        if not cfg.general_tasks:
            return []
        stages = self.stages(n_tasks)
        if cfg.general_stages is None:
            return sorted({stages[0], stages[-1]})
        unknown = sorted(set(cfg.general_stages) - set(stages))
        if unknown:
            raise UsageError(
                f"eval.general_stages names stage(s) {unknown} this run does not have; "
                f"its stages are {stages}"
            )
        return sorted(set(cfg.general_stages))

    def check_general(self, n_tasks: int) -> list[int]:
        """Before anything trains: lmms-eval is installed and knows every general task."""
        stages = self.general_stages(n_tasks)
        if stages:
            from cvit_bench.plugins.lmms import general

            general.check(self.config.eval.general_tasks, self.config.eval.general_include_path)
        return stages

    def run(self) -> results_io.RunResults:
        tasks = self.task_order()
        general_stages = self.check_general(len(tasks))
        info = self._claim_run_dir(tasks)
        stages = self.stages(len(tasks))
        finished = set(info.get("finished_stages", []))
        todo = [s for s in stages if s not in finished]
        if not todo:
            return results_io.RunResults(self.run_dir)
        ctx = self.build(tasks)
        model, method = ctx.model, ctx.method
        resumed_from = max(finished, default=-1)
        if resumed_from >= 1:
            self.restore(ctx, resumed_from)
        engine = model.create_engine(ctx)
        provenance = self._provenance(model, method)
        matrix_rows = self._load_rows("matrix.arrow", "matrix", finished)
        stage_rows = self._load_rows("stages.arrow", "stages", finished)
        control_rows = self._load_rows("controls.arrow", "controls", finished)
        general_rows = self._load_rows("general.arrow", "general", finished)
        run_event = {
            "run_dir": str(self.run_dir),
            "config": self.config.to_dict(),
            "tasks": [t.name for t in tasks],
            "resumed_from_stage": todo[0],
            "provenance": provenance,
        }
        self.manager.emit("run_started", run=run_event)
        bar = _progress(todo, self.progress and self.rank == 0, "stages")
        for stage in bar:
            ctx.stage = stage
            seed_everything(stage_seed(self.config.seed, stage))
            started = time.perf_counter()
            train_stats: dict[str, Any] = {}
            trained = self._trained_name(stage, tasks)
            if stage >= 1:
                train_stats = self._train_stage(ctx, engine, method, stage, tasks)
                self.manager.emit(
                    "task_trained",
                    run=run_event,
                    stage=stage,
                    task=trained,
                    stats=dict(train_stats),
                )
            train_s = time.perf_counter() - started
            new_rows = []
            scores: dict[str, TaskScore] = {}
            for task in self.eval_tasks(stage, tasks):
                score, predictions, references = self._evaluate(ctx, engine, task)
                scores[task.name] = score
                new_rows.extend(_matrix_rows(stage, trained, task, tasks, score))
                if self.rank == 0:
                    self._write_predictions(stage, task, predictions, references, score, provenance)
                self.manager.emit(
                    "task_evaluated",
                    run=run_event,
                    stage=stage,
                    task=task.name,
                    metrics=dict(score.metrics),
                    primary=score.primary,
                )
            if stage >= 1 and self.config.eval.controls:
                trained_tasks = tasks if self.schedule == "joint" else [tasks[stage - 1]]
                control_rows = [r for r in control_rows if r["stage"] != stage] + [
                    self._control_row(ctx, engine, stage, task, scores.get(task.name))
                    for task in trained_tasks
                ]
            if stage in general_stages:
                general_rows = [r for r in general_rows if r["stage"] != stage] + [
                    {"stage": stage, "trained_task": trained, **row}
                    for row in self._evaluate_general(ctx, engine)
                ]
            wall_s = time.perf_counter() - started
            if stage >= 1:
                # every rank calls save_checkpoint (gathering sharded weights is collective);
                # only rank 0 writes, into a temporary folder renamed when complete
                final_dir = self.checkpoint_dir(stage)
                tmp_dir = final_dir.with_name(final_dir.name + ".tmp")
                if self.rank == 0:
                    shutil.rmtree(tmp_dir, ignore_errors=True)
                    tmp_dir.mkdir(parents=True)
                method.save_checkpoint(ctx, tmp_dir)
                if self.rank == 0:
                    shutil.rmtree(final_dir, ignore_errors=True)
                    tmp_dir.rename(final_dir)
            costs = method.costs()
            stage_rows = [r for r in stage_rows if r["stage"] != stage] + [
                {
                    "stage": stage,
                    "trained_task": trained,
                    "wall_s": wall_s,
                    "train_s": train_s,
                    "eval_s": wall_s - train_s,
                    "steps": train_stats.get("steps", 0),
                    "train_samples": train_stats.get("samples", 0),
                    "loss": train_stats.get("loss"),
                    "trainable_params": train_stats.get("trainable_params", 0),
                    "peak_mem_mb": max(train_stats.get("peak_mem_mb") or 0.0, _peak_rss_mb()),
                    "stored_samples": int(costs.get("stored_samples", 0) or 0),
                    "method_costs": json.dumps(costs, sort_keys=True, default=str),
                }
            ]
            matrix_rows = [r for r in matrix_rows if r["stage"] != stage] + new_rows
            if self.rank == 0:
                results_io.write_table(
                    self.run_dir / "matrix.arrow", "matrix", matrix_rows, provenance
                )
                results_io.write_table(
                    self.run_dir / "stages.arrow", "stages", stage_rows, provenance
                )
                if control_rows:
                    results_io.write_table(
                        self.run_dir / "controls.arrow", "controls", control_rows, provenance
                    )
                if general_stages:
                    results_io.write_table(
                        self.run_dir / "general.arrow", "general", general_rows, provenance
                    )
                info["finished_stages"] = sorted(set(info["finished_stages"]) | {stage})
                info["stage_wall_s"][str(stage)] = wall_s
                atomic_write_json(self._info_path(), info)  # the commit point of the stage
            self.manager.emit("stage_finished", run=run_event, stage=stage, wall_s=wall_s)
        results = results_io.RunResults(self.run_dir) if self.rank == 0 else None
        if self.rank == 0:
            assert results is not None
            summary = results.metrics()
            results_io.write_table(
                self.run_dir / "summary.arrow",
                "summary",
                [{"metric": k, "value": v} for k, v in summary.items()],
                provenance,
            )
            info["status"] = "finished"
            info["finished"] = _now()
            atomic_write_json(self._info_path(), info)
            self.manager.emit("run_finished", run=run_event, summary=dict(summary))
            return results_io.RunResults(self.run_dir)
        return results  # type: ignore[return-value]

    def build(self, tasks: list[TaskInfo], cache_dir: Path | None = None) -> RunContext:
        """The run's parts as stage 0 starts: the benchmark prepared, the model built, the
        method set up (``ctx.method``); what a fresh run, a resume and a loaded stage share."""
        model = self.model_cls(self.model_config)
        ctx = RunContext(
            config=self.config,
            run_dir=self.run_dir,
            cache_dir=cache_dir or default_cache_dir(self.config),
            benchmark=self.benchmark,
            model=model,
            tasks=tasks,
            stage=0,
            rank=self.rank,
            world_size=self.world_size,
        )
        seed_everything(stage_seed(self.config.seed, 0))
        self.benchmark.prepare(ctx)
        model.build(ctx)
        method = self.method_cls(self.method_config)
        ctx.method = method
        method.setup(ctx)
        return ctx

    def restore(self, ctx: RunContext, stage: int) -> None:
        """Load the method's checkpoint of finished ``stage`` (>= 1) into a ``build`` result."""
        assert ctx.method is not None
        ctx.stage = stage
        ctx.method.load_checkpoint(ctx, self.checkpoint_dir(stage))

    def _train_stage(
        self, ctx: RunContext, engine: Any, method: Any, stage: int, tasks: list[TaskInfo]
    ) -> dict[str, Any]:
        if self.schedule == "joint":
            samples: list[Sample] = []
            for task in tasks:
                samples.extend(self.benchmark.train_samples(task.name))
            return dict(engine.train(ctx, None, samples))
        task = tasks[stage - 1]
        method.before_task(ctx, task)
        samples = list(method.training_samples(ctx, task, self.benchmark.train_samples(task.name)))
        stats = dict(engine.train(ctx, task, samples))
        method.after_task(ctx, task, samples)
        return stats

    def _evaluate(
        self, ctx: RunContext, engine: Any, task: TaskInfo
    ) -> tuple[TaskScore, list[Prediction], Sequence[Sample]]:
        references = self.benchmark.eval_samples(task.name)
        if self.config.eval.max_new_tokens is not None:
            task = dataclasses.replace(task, max_new_tokens=self.config.eval.max_new_tokens)
        predictions = list(engine.predict(ctx, task, references))
        score = self.benchmark.score(task.name, predictions, references)
        return score, predictions, references

    def _control_row(
        self, ctx: RunContext, engine: Any, stage: int, task: TaskInfo, score: TaskScore | None
    ) -> dict[str, Any]:
        """The task right after training, against two image-free explanations of its score:
        the same model given blank images, and the most frequent training answer."""
        references = list(self.benchmark.eval_samples(task.name))
        blank_score = None
        blank = self._blank_image(references)
        if blank is not None:
            blanked = [dataclasses.replace(r, image=blank) if r.image else r for r in references]
            if self.config.eval.max_new_tokens is not None:
                task = dataclasses.replace(task, max_new_tokens=self.config.eval.max_new_tokens)
            predictions = list(engine.predict(ctx, task, blanked))
            blank_score = self.benchmark.score(task.name, predictions, blanked).value
        answers = Counter(
            s.answer for s in self.benchmark.train_samples(task.name) if s.answer is not None
        )
        # the most frequent training answer; ties go to the first in sorted order
        majority_answer = max(sorted(answers), key=answers.__getitem__) if answers else None
        majority = None
        if majority_answer is not None:
            constant = [Prediction(id=r.id, text=majority_answer) for r in references]
            majority = self.benchmark.score(task.name, constant, references).value
        return {
            "stage": stage,
            "task": task.name,
            "score": score.value if score is not None else None,
            "blank_image": blank_score,
            "majority": majority,
            "majority_answer": majority_answer,
            "n": len(references),
        }

    def _blank_image(self, references: Sequence[Sample]) -> str | None:
        """A mid-grey image the size of the task's first image (None for text-only tasks)."""
        first = next((r.image for r in references if r.image), None)
        if first is None:
            return None
        from PIL import Image

        try:
            with Image.open(first) as image:
                size = image.size
        except OSError as exc:
            raise DataError(f"{first}: cannot read the image ({exc})") from None
        path = default_cache_dir(self.config) / "controls" / f"blank_{size[0]}x{size[1]}.png"
        if not path.exists():
            buffer = io.BytesIO()
            Image.new("RGB", size, (128, 128, 128)).save(buffer, format="PNG")
            atomic_write_bytes(path, buffer.getvalue())
        return str(path)

    def _evaluate_general(self, ctx: RunContext, engine: Any) -> list[dict[str, Any]]:
        """lmms-eval's scores of ``eval.general_tasks`` on the model in memory."""
        from cvit_bench.plugins.lmms import general

        cfg = self.config.eval
        return general.evaluate(
            ctx, engine, cfg.general_tasks, cfg.general_include_path, cfg.general_limit
        )

    def _write_predictions(
        self,
        stage: int,
        task: TaskInfo,
        predictions: list[Prediction],
        references: Sequence[Sample],
        score: TaskScore,
        provenance: dict[str, Any],
    ) -> None:
        by_id = {p.id: p for p in predictions}
        rows = []
        for ref in references:
            pred = by_id.get(ref.id)
            per = score.per_sample.get(ref.id)
            rows.append(
                {
                    "id": str(ref.id),
                    "id_is_int": isinstance(ref.id, int),
                    "prompt": pred.prompt if pred and pred.prompt else ref.prompt,
                    "prediction": pred.text if pred else None,
                    "reference": ref.answer,
                    "score": per,
                }
            )
        results_io.write_table(
            results_io.prediction_path(self.run_dir, stage, task.name),
            "predictions",
            rows,
            provenance,
        )

    def checkpoint_dir(self, stage: int) -> Path:
        return self.run_dir / "checkpoints" / f"stage_{stage}"

    def _load_rows(self, name: str, kind: str, finished: set[int]) -> list[dict[str, Any]]:
        path = self.run_dir / name
        if not path.exists():
            return []
        table, _ = results_io.read_table(path, kind)
        # rows of a stage that was not committed (killed mid-stage) are dropped and redone
        return [r for r in table.to_pylist() if r["stage"] in finished]

    def _provenance(self, model: Any, method: Any) -> dict[str, Any]:
        from . import API_VERSION, __version__

        def origin(kind: str, name: str) -> dict[str, str]:
            entry = self.manager.registry(kind).get(name)
            return {
                "name": entry.name,
                "distribution": entry.origin.distribution,
                "version": entry.origin.version,
                "plugin": entry.origin.plugin,
            }

        describe = getattr(model, "describe", None)
        return {
            "schema_version": results_io.SCHEMA_VERSION,
            "cvit_bench_version": __version__,
            "api_version": API_VERSION,
            "method": origin("methods", self.config.method),
            "benchmark": origin("benchmarks", self.config.bench),
            "model": origin("models", self.model_entry.name),
            "benchmark_identity": self.benchmark.identity(),
            "model_source": describe() if describe else {},
            "method_requirements": dataclasses.asdict(self.method_cls.requirements),
            "schedule": self.schedule,
            "eval_on": self.config.eval.eval_on,
            "seed": self.config.seed,
            "tasks": [t.name for t in self.task_order()],
            "tags": list(self.config.tags),
            "git": _git_state(),
            "hardware": _hardware(),
            "config_identity": self.config.identity(),
            **_general_provenance_of(self.config),
            "command": " ".join(sys.argv),
            "started": _now(),
        }


def _general_provenance_of(config: RunConfig) -> dict[str, Any]:
    if not config.eval.general_tasks:
        return {}
    from importlib.metadata import PackageNotFoundError, version

    try:
        lmms_version = version("lmms-eval")
    except PackageNotFoundError:  # pragma: no cover - checked before the run starts
        lmms_version = None
    return {"general_tasks": list(config.eval.general_tasks), "lmms_eval_version": lmms_version}


def _matrix_rows(
    stage: int, trained: str, task: TaskInfo, tasks: list[TaskInfo], score: TaskScore
) -> list[dict[str, Any]]:
    index = [t.name for t in tasks].index(task.name) + 1
    metrics = dict(score.metrics)
    metrics.setdefault(score.primary, float("nan"))
    return [
        {
            "stage": stage,
            "trained_task": trained,
            "eval_task": task.name,
            "eval_index": index,
            "metric": name,
            "value": float(value),
            "primary": name == score.primary,
            "n": score.n,
            "not_scored": score.not_scored,
        }
        for name, value in metrics.items()
    ]


def _asdict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else {}


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(_config_diff(a, b, f"{prefix}{key}."))
        elif a != b and key not in ("cache_dir", "tags"):
            diffs.append(f"{prefix}{key}: {a!r} there, {b!r} now")
    return diffs


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _peak_rss_mb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, OSError):  # pragma: no cover - non-Unix
        return 0.0


def _git_state() -> dict[str, Any]:
    """The commit and dirty flag of the cvit-bench source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def _hardware() -> dict[str, Any]:
    out: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
            out["gpu_count"] = torch.cuda.device_count()
    return out


def _progress(items: list[int], enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return items
    return tqdm(items, desc=desc, unit="stage", file=sys.stderr, disable=not sys.stderr.isatty())
