"""Torch-free fakes: a benchmark, a model and its engine, that run the whole protocol in
milliseconds with real learning and real forgetting.

* :class:`FakeBenchmark` has tasks of canned questions, each with a fixed answer.
* :class:`FakeModel` "learns" by memorising (question, answer) pairs in a memory of bounded
  capacity (oldest forgotten first), and answers an unknown question with the most frequent
  answer of the last task it trained on, which is the superficial forgetting real models show.
* :class:`FakeEngine` drives any method through its real hooks: ``trainable_parameters``,
  ``training_loss`` per batch, ``inference`` around every generated batch.

Use them to test a method's protocol logic (replay, routing, per-task state, resume) without a
model, or a logger plugin's run events. ``FakeParameter`` objects stand in for tensors.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cvit_bench.harness.config import config_field
from cvit_bench.harness.protocols import RunContext, iter_batches
from cvit_bench.harness.types import Prediction, Sample, TaskInfo, TaskScore


@dataclass
class FakeBenchmarkConfig:
    tasks: int = config_field(4, help="number of tasks")
    questions: int = config_field(12, help="questions per task")
    answers: int = config_field(4, help="distinct answers per task")


class FakeBenchmark:
    """Tasks ``task1..taskN`` of questions ``"taskK question I"`` with fixed answers."""

    name: ClassVar[str] = "fake-bench"
    version: ClassVar[str] = "1"
    config_class: ClassVar[type] = FakeBenchmarkConfig
    reference_model: ClassVar[str | None] = "fake-model"

    def __init__(self, config: FakeBenchmarkConfig | None = None):
        self.config = config or FakeBenchmarkConfig()
        self.prepared = False

    def prepare(self, ctx: RunContext) -> None:
        self.prepared = True

    def tasks(self) -> list[TaskInfo]:
        return [
            TaskInfo(f"task{k}", "accuracy", 4, f"fake task {k}")
            for k in range(1, self.config.tasks + 1)
        ]

    def _items(self, task: str) -> list[tuple[int, str, str]]:
        k = int(task.removeprefix("task"))
        return [
            (i, f"{task} question {i}", f"t{k}a{i % self.config.answers}")
            for i in range(self.config.questions)
        ]

    def train_samples(self, task: str) -> list[Sample]:
        return [
            Sample(id=f"{task}-train-{i}", task=task, prompt=q, answer=a)
            for i, q, a in self._items(task)
        ]

    def eval_samples(self, task: str) -> list[Sample]:
        return [Sample(id=i, task=task, prompt=q, answer=a) for i, q, a in self._items(task)]

    def score(
        self, task: str, predictions: Sequence[Prediction], references: Sequence[Sample]
    ) -> TaskScore:
        by_id = {}
        for p in predictions:
            if p.id in by_id:
                raise ValueError(f"duplicate prediction id {p.id!r}")
            by_id[p.id] = p.text
        per = {r.id: 100.0 if by_id.get(r.id) == r.answer else 0.0 for r in references}
        value = sum(per.values()) / len(per) if per else float("nan")
        return TaskScore("accuracy", {"accuracy": value}, len(per), per)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "scoring_mode": "exact"}


@dataclass
class FakeParameter:
    """A stand-in for a tensor: a name, a value and a ``requires_grad`` flag."""

    name: str
    value: float = 0.0
    requires_grad: bool = True

    def numel(self) -> int:
        return 1


class FakeNetwork:
    """What ``ctx.model.model`` is for the fake model: holds parameters and the memory."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.memory: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.params: list[FakeParameter] = [FakeParameter("base", requires_grad=False)]
        self.default_answer = ""
        self.override: dict[str, str] | None = None  # set by routing methods in tests

    def parameters(self) -> list[FakeParameter]:
        return list(self.params)

    def learn(self, samples: Sequence[Sample]) -> None:
        for s in samples:
            self.memory.pop(s.prompt, None)
            self.memory[s.prompt] = s.answer or ""
            while len(self.memory) > self.capacity:
                self.memory.popitem(last=False)
        counts = collections.Counter(s.answer for s in samples)
        if counts:
            self.default_answer = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def answer(self, sample: Sample) -> str:
        if self.override is not None and sample.prompt in self.override:
            return self.override[sample.prompt]
        return self.memory.get(sample.prompt, self.default_answer)


@dataclass
class FakeModelConfig:
    capacity: int = config_field(18, help="how many question-answer pairs the model can hold")
    batch_size: int = config_field(4, help="training and evaluation batch size")
    delay_s: float = config_field(0.0, help="seconds each training batch takes (to test kills)")


@dataclass
class FakeOutputs:
    loss: float


class FakeModel:
    """A model adapter whose model memorises answers (see the module docstring)."""

    name: ClassVar[str] = "fake-model"
    config_class: ClassVar[type] = FakeModelConfig

    def __init__(self, config: FakeModelConfig | None = None):
        self.config = config or FakeModelConfig()
        self.model: FakeNetwork | None = None

    def build(self, ctx: RunContext) -> None:
        self.model = FakeNetwork(self.config.capacity)

    def create_engine(self, ctx: RunContext) -> FakeEngine:
        return FakeEngine(self)

    def lora_targets(self) -> list[str]:
        return ["base"]

    def describe(self) -> dict[str, Any]:
        return {"source": "built-in fake", "revision": "1", "starting_point": "empty"}


class FakeEngine:
    """Trains and evaluates a :class:`FakeModel`, calling the method's hooks like a real engine."""

    def __init__(self, adapter: FakeModel):
        self.adapter = adapter
        self.batches_trained = 0
        self.losses: list[Any] = []

    def train(
        self, ctx: RunContext, task: TaskInfo | None, samples: Sequence[Sample]
    ) -> dict[str, Any]:
        assert ctx.method is not None and self.adapter.model is not None
        groups = ctx.method.trainable_parameters(ctx)
        n_params = sum(p.numel() for g in groups for p in g["params"])
        order = list(samples)
        random.Random(ctx.config.seed * 7919 + ctx.stage).shuffle(order)
        network = self.adapter.model
        loss = None
        for batch_samples in iter_batches(order, self.adapter.config.batch_size):
            wrong = sum(network.answer(s) != s.answer for s in batch_samples)
            batch = {"samples": list(batch_samples)}
            loss = ctx.method.training_loss(ctx, batch, FakeOutputs(wrong / len(batch_samples)))
            self.losses.append(loss)
            network.learn(batch_samples)
            self.batches_trained += 1
            if self.adapter.config.delay_s:
                time.sleep(self.adapter.config.delay_s)
        return {
            "steps": -(-len(order) // self.adapter.config.batch_size),
            "samples": len(order),
            "loss": float(loss) if loss is not None else None,
            "trainable_params": n_params,
        }

    def predict(
        self, ctx: RunContext, task: TaskInfo, samples: Sequence[Sample]
    ) -> list[Prediction]:
        assert ctx.method is not None and self.adapter.model is not None
        out = []
        for batch_samples in iter_batches(list(samples), self.adapter.config.batch_size):
            batch = {"samples": list(batch_samples)}
            with ctx.method.inference(ctx, batch):
                out.extend(
                    Prediction(s.id, self.adapter.model.answer(s), s.prompt) for s in batch_samples
                )
        return out
