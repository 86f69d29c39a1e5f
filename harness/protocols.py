"""The three protocols a run is made of: one Model adapter, one Method, one Benchmark.

The runner calls plugins only through these members. They are ``typing.Protocol`` classes:
a plugin class needs no base class (``MethodBase`` and friends only supply defaults), and
``cvit_bench.testing`` checks conformance.

Call order for a run with tasks ``t1..tT`` (``schedule == "sequential"``)::

    benchmark = Benchmark(bench_config); benchmark.prepare(ctx)
    model = ModelAdapter(model_config);  model.build(ctx)
    method = Method(method_config);      method.setup(ctx)
    engine = model.create_engine(ctx)
    stage 0: for each task j: engine.predict(...) -> benchmark.score(...)
    stage t: method.before_task(ctx, t)
             samples = method.training_samples(ctx, t, benchmark.train_samples(t))
             engine.train(ctx, t, samples)        # calls method.trainable_parameters,
                                                  # method.training_loss per batch
             method.after_task(ctx, t, samples)
             evaluate (engine.predict, inside method.inference per batch)
             method.save_checkpoint(ctx, dir)
    resume:  build + setup as above, then method.load_checkpoint(ctx, dir_of_last_stage)

Torch types appear as ``Any`` so that importing this module never imports torch.

Versioning: part of the public plugin API, version :data:`cvit_bench.harness.API_VERSION`;
members are only added, with defaults in the base classes, and removals are deprecated first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from .types import MethodRequirements, Prediction, Sample, Schedule, TaskInfo, TaskScore

if TYPE_CHECKING:
    from .config import RunConfig


@dataclass
class RunContext:
    """Everything a plugin may look at during a run. Plugins read it; only the runner writes.

    Attributes:
        config: the resolved run configuration.
        run_dir: the run's output directory.
        cache_dir: a directory for reusable artefacts (generated data, pretrained tiny models).
        benchmark: the benchmark instance.
        model: the model adapter instance (``model.model`` is the torch module once built).
        method: the method instance (set before ``method.setup`` is called).
        tasks: the tasks in training order.
        stage: the current stage (0 = zero-shot evaluation, t = after training task t).
        rank, world_size: this process's place in a distributed run (0 and 1 when alone).
        extras: free-form space the runner passes through untouched (for tests and tools).
    """

    config: RunConfig
    run_dir: Path
    cache_dir: Path
    benchmark: Benchmark
    model: ModelAdapter
    method: Method | None = None
    tasks: list[TaskInfo] = field(default_factory=list)
    stage: int = 0
    rank: int = 0
    world_size: int = 1
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> TaskInfo | None:
        """The task being trained in this stage (``None`` at stage 0)."""
        if 1 <= self.stage <= len(self.tasks):
            return self.tasks[self.stage - 1]
        return None

    @property
    def task_index(self) -> int:
        """0-based index of the current task in training order (-1 at stage 0)."""
        return self.stage - 1


@runtime_checkable
class Benchmark(Protocol):
    """An ordered sequence of tasks with their data and a pure scoring function.

    Class attributes:
        name: the registered name (``coin``).
        version: changes whenever data handling, prompts or scoring change; recorded in every
            result file, and runs with different versions are never ranked together.
        config_class: a dataclass of options (``data_root``, ``max_train``, scoring mode, ...);
            each field documents itself through ``metadata["help"]``.
        reference_model: the model name a run uses when ``--model`` is not given.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    config_class: ClassVar[type]
    reference_model: ClassVar[str | None]

    def __init__(self, config: Any) -> None: ...

    def prepare(self, ctx: RunContext) -> None:
        """Locate (or generate) the data and check it; raise ``DataError`` naming what is wrong.

        Called once per process before anything else touches the benchmark.
        """

    def tasks(self) -> list[TaskInfo]:
        """The tasks in the published order."""

    def train_samples(self, task: str) -> Sequence[Sample]:
        """The training samples of ``task`` (after any configured subsampling)."""

    def eval_samples(self, task: str) -> Sequence[Sample]:
        """The evaluation samples of ``task`` (after any configured subsampling)."""

    def score(
        self, task: str, predictions: Sequence[Prediction], references: Sequence[Sample]
    ) -> TaskScore:
        """Score predictions against references, matched by id. Pure: no model, no I/O
        beyond reference files read in ``prepare``; testable on canned strings."""

    def identity(self) -> dict[str, Any]:
        """What makes scores comparable: at least ``name`` and ``version``, plus the scoring
        mode and whether the data was subsampled. Recorded in the result files."""


@runtime_checkable
class Engine(Protocol):
    """Trains and evaluates a built model. The model adapter chooses its engine
    (DeepSpeed for torch models)."""

    def train(
        self, ctx: RunContext, task: TaskInfo | None, samples: Sequence[Sample]
    ) -> dict[str, Any]:
        """Train on ``samples`` (``task`` is ``None`` for a joint stage); return statistics:
        ``steps``, ``samples``, ``loss`` (last logged), ``trainable_params``, ``peak_mem_mb``."""

    def predict(
        self, ctx: RunContext, task: TaskInfo, samples: Sequence[Sample]
    ) -> list[Prediction]:
        """Greedy answers for ``samples``, one per sample, in the order given. Batched,
        sharded over ranks and gathered on every rank."""


@runtime_checkable
class ModelAdapter(Protocol):
    """Builds a model family's model, tokenizer and processor and knows how to batch for it.

    Class attributes:
        name: the registered name.
        config_class: a dataclass of options (local path, starting point, sizes).

    Optional (API 1.1): ``features``, a set of the model features methods may rely on
    (``cvit_bench.harness.capabilities``; a method whose ``requirements.model_features`` names
    one the adapter lacks is refused before the run starts), and a classmethod
    ``preflight(config)`` raising ``UsageError`` for options this machine cannot honour.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None: ...

    def build(self, ctx: RunContext) -> None:
        """Create or load the model (``self.model``), tokenizer and processor. Never downloads:
        a missing local path raises ``DataError`` saying what is missing and where to get it."""

    def create_engine(self, ctx: RunContext) -> Engine:
        """The engine that trains and evaluates this model."""

    def lora_targets(self) -> list[str]:
        """Module name suffixes LoRA-style methods adapt (``q_proj``, ``v_proj``, ...) in the
        language model."""

    def describe(self) -> dict[str, Any]:
        """Provenance: ``source`` (path or ``built-in``), ``revision``, ``starting_point``,
        parameter counts."""


@runtime_checkable
class Method(Protocol):
    """A continual-learning method. See ``MethodBase`` for what each default does.

    Class attributes:
        name: the registered name.
        config_class: a dataclass of options whose fields carry ``metadata["help"]``.
        requirements: what the method needs at inference and what it stores.
        schedule: ``sequential`` (one stage per task), ``joint`` or ``none``.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    requirements: ClassVar[MethodRequirements]
    schedule: ClassVar[Schedule]

    def __init__(self, config: Any) -> None: ...

    def setup(self, ctx: RunContext) -> None:
        """Once per process after the model is built (fresh runs and resumes alike): wrap the
        model (add adapters), build frozen copies, load encoders."""

    def before_task(self, ctx: RunContext, task: TaskInfo) -> None:
        """Before training on ``task``: add per-task parameters, choose what trains."""

    def training_samples(
        self, ctx: RunContext, task: TaskInfo, samples: Sequence[Sample]
    ) -> Sequence[Sample]:
        """The data to train on for ``task`` (replay mixes stored samples in here)."""

    def trainable_parameters(self, ctx: RunContext) -> list[dict[str, Any]]:
        """Optimizer parameter groups for the current task: a list of
        ``{"params": [...], "lr": float | None, "name": str}``; ``lr=None`` uses the run's
        learning rate. The engine is rebuilt per task, so the list may grow."""

    def training_loss(self, ctx: RunContext, batch: dict[str, Any], outputs: Any) -> Any:
        """The loss to minimise for one batch, given the model's outputs (``outputs.loss`` is
        the language-modelling loss on answer tokens). Add regularisers here."""

    def after_task(self, ctx: RunContext, task: TaskInfo, samples: Sequence[Sample]) -> None:
        """After training on ``task``: merge adapters, estimate Fisher, store samples,
        train a router."""

    def inference(self, ctx: RunContext, batch: dict[str, Any]) -> AbstractContextManager[Any]:
        """A context entered around the generation of one batch (routing, expert selection);
        ``batch["samples"]`` holds the batch's ``Sample`` objects."""

    def save_checkpoint(self, ctx: RunContext, directory: Path) -> None:
        """Write everything needed to resume after this stage (adapter weights, method state).

        Called on every rank (gathering sharded weights is a collective operation); only rank 0
        (``ctx.rank == 0``) writes files."""

    def load_checkpoint(self, ctx: RunContext, directory: Path) -> None:
        """Restore what ``save_checkpoint`` wrote; called after ``setup`` on resume."""

    def costs(self) -> dict[str, Any]:
        """What the method keeps: ``stored_samples`` (int), ``extra_params`` (int), any more."""


class MethodBase:
    """Defaults for every ``Method`` member; subclass and override what the method changes."""

    name: ClassVar[str] = "base"
    config_class: ClassVar[type] = type(None)
    requirements: ClassVar[MethodRequirements] = MethodRequirements()
    schedule: ClassVar[Schedule] = "sequential"

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def setup(self, ctx: RunContext) -> None:
        return None

    def before_task(self, ctx: RunContext, task: TaskInfo) -> None:
        return None

    def training_samples(
        self, ctx: RunContext, task: TaskInfo, samples: Sequence[Sample]
    ) -> Sequence[Sample]:
        return samples

    def trainable_parameters(self, ctx: RunContext) -> list[dict[str, Any]]:
        model = ctx.model.model  # type: ignore[attr-defined]
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"params": params, "lr": None, "name": "trainable"}]

    def training_loss(self, ctx: RunContext, batch: dict[str, Any], outputs: Any) -> Any:
        return outputs.loss

    def after_task(self, ctx: RunContext, task: TaskInfo, samples: Sequence[Sample]) -> None:
        return None

    def inference(self, ctx: RunContext, batch: dict[str, Any]) -> AbstractContextManager[Any]:
        return _nullcontext()

    def state_dict(self) -> dict[str, Any]:
        """Method state that is not model weights (buffers, anchors, masks); picklable."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def save_checkpoint(self, ctx: RunContext, directory: Path) -> None:
        import pickle

        from .io import atomic_write_bytes

        if ctx.rank != 0:
            return
        atomic_write_bytes(
            Path(directory) / "method_state.pkl", pickle.dumps(self.state_dict(), protocol=4)
        )

    def load_checkpoint(self, ctx: RunContext, directory: Path) -> None:
        import pickle

        path = Path(directory) / "method_state.pkl"
        if path.exists():
            self.load_state_dict(pickle.loads(path.read_bytes()))

    def costs(self) -> dict[str, Any]:
        return {"stored_samples": 0}


class _nullcontext(AbstractContextManager):
    def __exit__(self, *exc: Any) -> None:
        return None


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
