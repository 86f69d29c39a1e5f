"""Defaults for every ``Benchmark`` member that real and synthetic benchmarks share.

A benchmark subclasses :class:`BenchmarkBase`, lists its tasks in ``TASKS`` and implements
``load_train``, ``load_eval`` and ``score``; the base class resolves the data root, subsamples
(seeded) and caches the samples, checks the data in ``prepare`` and reports its identity.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cvit_bench.harness.config import build_dataclass, config_field
from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.types import Prediction, Sample, TaskInfo, TaskScore

if TYPE_CHECKING:
    from cvit_bench.harness.protocols import RunContext

    from .check import DataFile

DATA_ROOT_ENV = "CVIT_BENCH_DATA_ROOT"
"""Environment variable naming the local data root when neither the benchmark options nor the
run configuration give one."""


@dataclass
class BenchmarkConfig:
    """Options every benchmark understands."""

    data_root: str | None = config_field(
        None,
        help="local copy of the benchmark's data (default: the run's data_root, then "
        f"${DATA_ROOT_ENV})",
    )
    max_train: int | None = config_field(
        None, help="keep at most this many training samples per task (seeded random subset)"
    )
    max_eval: int | None = config_field(
        None,
        help="keep at most this many evaluation samples per task (seeded random subset; "
        "the run is then marked as subsampled and never ranked beside full runs)",
    )
    subsample_seed: int = config_field(
        0,
        help="seed of the max_train/max_eval subsets (independent of the run's seed, so runs "
        "with different seeds see the same subset)",
    )


def subsample(items: Sequence[Sample], limit: int | None, seed: int, key: str) -> list[Sample]:
    """At most ``limit`` items chosen at random with a seed derived from ``seed`` and ``key``,
    kept in file order. ``None`` (or a limit at least the size) keeps everything."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 0:
        raise UsageError(f"subsample size must be >= 0, got {limit}")
    rng = random.Random(f"{seed}:{key}")
    chosen = sorted(rng.sample(range(len(items)), limit))
    return [items[i] for i in chosen]


class BenchmarkBase:
    """Base class satisfying :class:`cvit_bench.harness.protocols.Benchmark`.

    Subclasses set ``name``, ``version``, ``TASKS`` (in published order), optionally
    ``config_class`` (a subclass of :class:`BenchmarkConfig`) and ``reference_model``, and
    implement :meth:`load_train`, :meth:`load_eval` and :meth:`score`. A benchmark whose data
    is checked by :func:`~cvit_bench.plugins.benchmarks.common.check.check_benchmark` also
    implements :meth:`data_files`.
    """

    name: ClassVar[str] = "base"
    version: ClassVar[str] = "0"
    config_class: ClassVar[type] = BenchmarkConfig
    reference_model: ClassVar[str | None] = None
    TASKS: ClassVar[tuple[TaskInfo, ...]] = ()
    needs_data_root: ClassVar[bool] = True
    """False for benchmarks that make their own data (synthetic ones)."""

    def __init__(self, config: Any = None) -> None:
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = build_dataclass(self.config_class, config, f"benchmark {self.name!r}")
        self.config = config
        self.data_root: Path | None = None
        self._cache: dict[tuple[str, str], list[Sample]] = {}

    # -- locating and checking the data -----------------------------------------------------
    def resolve_data_root(self, ctx: RunContext | None = None) -> Path | None:
        """The benchmark option ``data_root``, else the run's ``data_root``, else
        ``$CVIT_BENCH_DATA_ROOT``; ``None`` when none is set."""
        candidates = [getattr(self.config, "data_root", None)]
        if ctx is not None:
            candidates.append(getattr(ctx.config, "data_root", None))
        candidates.append(os.environ.get(DATA_ROOT_ENV) or None)
        for candidate in candidates:
            if candidate:
                return Path(candidate).expanduser().absolute()
        return None

    def prepare(self, ctx: RunContext | None = None) -> None:
        """Resolve the data root and run the fast data check (files present, images exist).

        Raises ``DataError`` listing every problem when the data cannot support a run.
        """
        root = self.resolve_data_root(ctx)
        if root is None:
            if self.needs_data_root:
                raise DataError(
                    f"benchmark {self.name!r} needs a local copy of its data: pass --data-root "
                    f"DIR, set data_root in the config file, or set ${DATA_ROOT_ENV}"
                )
            return
        self.set_data_root(root)
        if self.needs_data_root:
            from .check import check_benchmark

            report = check_benchmark(self, root, fast=True)
            if not report.ok:
                raise DataError(report.format())

    def set_data_root(self, root: str | os.PathLike[str]) -> None:
        """Point the benchmark at ``root`` without checking it (tests and tools)."""
        root = Path(root).expanduser().absolute()
        if root != self.data_root:
            self._cache.clear()
        self.data_root = root

    def require_root(self) -> Path:
        if self.data_root is None:
            raise DataError(
                f"benchmark {self.name!r}: prepare() must run before data is read "
                "(no data root set)"
            )
        return self.data_root

    def data_files(self, root: Path) -> list[DataFile]:
        """The files the data check verifies under ``root`` (see ``check.DataFile``)."""
        return []

    # -- tasks and samples ------------------------------------------------------------------
    def tasks(self) -> list[TaskInfo]:
        return list(self.TASKS)

    def task_info(self, task: str) -> TaskInfo:
        for info in self.tasks():
            if info.name == task:
                return info
        known = ", ".join(t.name for t in self.tasks())
        raise UsageError(f"benchmark {self.name!r} has no task {task!r}; its tasks: {known}")

    def load_train(self, task: str) -> list[Sample]:
        """Every training sample of ``task`` as the data files hold them (each benchmark's own)."""
        raise NotImplementedError(f"{type(self).__name__} must define load_train()")

    def load_eval(self, task: str) -> list[Sample]:
        """Every evaluation sample of ``task`` as the data files hold them (each benchmark's own)."""
        raise NotImplementedError(f"{type(self).__name__} must define load_eval()")

    def train_samples(self, task: str) -> Sequence[Sample]:
        return self._samples(task, "train", getattr(self.config, "max_train", None))

    def eval_samples(self, task: str) -> Sequence[Sample]:
        return self._samples(task, "eval", getattr(self.config, "max_eval", None))

    def _samples(self, task: str, split: str, limit: int | None) -> list[Sample]:
        self.task_info(task)
        key = (task, split)
        if key not in self._cache:
            loaded = self.load_train(task) if split == "train" else self.load_eval(task)
            seed = getattr(self.config, "subsample_seed", 0)
            self._cache[key] = subsample(loaded, limit, seed, f"{self.name}:{task}:{split}")
        return self._cache[key]

    # -- scoring and identity ---------------------------------------------------------------
    def score(
        self, task: str, predictions: Sequence[Prediction], references: Sequence[Sample]
    ) -> TaskScore:
        """Each benchmark scores with its own task-to-scorer table."""
        raise NotImplementedError(f"{type(self).__name__} must define score()")

    @property
    def scoring_mode(self) -> str:
        return getattr(self.config, "scoring_mode", "published")

    def identity(self) -> dict[str, Any]:
        """Name, version, scoring mode and subsampling: what makes two runs' scores comparable."""
        max_train = getattr(self.config, "max_train", None)
        max_eval = getattr(self.config, "max_eval", None)
        identity: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "scoring_mode": self.scoring_mode,
            "subsampled": max_train is not None or max_eval is not None,
            "max_train": max_train,
            "max_eval": max_eval,
        }
        if identity["subsampled"]:
            identity["subsample_seed"] = getattr(self.config, "subsample_seed", 0)
        for extra in self.identity_options():
            identity[extra] = getattr(self.config, extra, None)
        return identity

    def identity_options(self) -> tuple[str, ...]:
        """Config fields that change scores or data and so belong in ``identity()``."""
        return ()
