"""Plain data types shared by the harness and every plugin.

Nothing here imports torch: benchmarks, scorers and the CLI use these types without a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Union

SampleId = Union[str, int]
"""A sample's id exactly as its annotation file spells it.

The published scorers look ids up without converting them, so ``"42"`` and ``42`` are different
ids; keep the type the file had.
"""


@dataclass(frozen=True)
class Turn:
    """One exchange of a conversation: what the user said and what the assistant answered."""

    human: str
    gpt: str


@dataclass(frozen=True)
class Sample:
    """One training or evaluation item of a task.

    Attributes:
        id: the item's id as the annotation file spells it (``id`` for training items,
            ``question_id`` for test items).
        task: name of the task the item belongs to.
        image: absolute path of the image, or ``None`` for a text-only item.
        prompt: the first user message, without the ``<image>`` placeholder (the model adapter
            inserts the image tokens where its chat template puts them).
        answer: the reference answer (evaluation) or the first assistant reply (training).
        turns: every exchange of a multi-turn training conversation, the first one included;
            empty for single-turn items, whose only exchange is ``(prompt, answer)``.
        meta: anything else a scorer needs (``answer_bbox``, ``size``, published fields), kept
            verbatim from the annotation file.
    """

    id: SampleId
    task: str
    prompt: str
    answer: str | None = None
    image: str | None = None
    turns: tuple[Turn, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def conversation(self) -> tuple[Turn, ...]:
        """All exchanges of the item; a single-turn item yields one ``Turn(prompt, answer)``."""
        if self.turns:
            return self.turns
        return (Turn(self.prompt, self.answer or ""),)


@dataclass(frozen=True)
class TaskInfo:
    """A task of a benchmark, as the runner and the result files see it.

    Attributes:
        name: the task's name, unique within its benchmark (``ScienceQA``, ``colour``, ...).
        primary_metric: the metric of ``TaskScore.metrics`` that enters the accuracy matrix.
        max_new_tokens: the generation budget the benchmark's published evaluation uses.
        description: one line shown by ``cvit-bench show`` and on the leaderboard.
    """

    name: str
    primary_metric: str = "accuracy"
    max_new_tokens: int = 128
    description: str = ""


@dataclass(frozen=True)
class Prediction:
    """A model's answer to one evaluation sample."""

    id: SampleId
    text: str
    prompt: str = ""


@dataclass
class TaskScore:
    """What a benchmark's scorer returns for one task.

    Attributes:
        primary: name of the metric that enters the accuracy matrix (a key of ``metrics``).
        metrics: every metric the scorer computes, on the 0-100 scale of the published scorers.
        n: the number of references scored (the denominator).
        per_sample: the score of each sample by id (0-100, or ``None`` where a sample has no
            per-sample score, as with corpus-level caption metrics).
        not_scored: a reason when the task could not be scored offline (``primary`` is then NaN).
        notes: remarks the result files keep beside the score (for example "scored on a
            subsample: CIDEr depends on the evaluated set").
    """

    primary: str
    metrics: dict[str, float]
    n: int
    per_sample: dict[SampleId, float | None] = field(default_factory=dict)
    not_scored: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The primary metric's value (NaN when the task was not scored)."""
        return float(self.metrics.get(self.primary, math.nan))


@dataclass(frozen=True)
class MethodRequirements:
    """What a method needs and keeps, recorded in the result files and shown on the leaderboard.

    Attributes:
        task_identity_at_inference: the method must be told which task a test sample belongs
            to (a task-incremental setting). Methods that route by themselves say ``False``.
        stores_samples: the method keeps past training samples (replay buffers, router sets).
        per_task_parameters: the method adds parameters for every task (experts, prompts).
        inference: a short phrase saying what inference costs beyond one forward pass
            ("routing over task experts by CLIP similarity", ...), empty when nothing.
        model_features: what the method needs from the model adapter, by the names of
            :data:`cvit_bench.harness.capabilities.MODEL_FEATURES` (``"lora"``,
            ``"image-embedding"``, ``"llava-internals"``); a model adapter lists what it offers
            in its ``features`` class attribute, and the runner refuses a run whose model lacks
            one before anything is written or trained. Added in API 1.1.
    """

    task_identity_at_inference: bool = False
    stores_samples: bool = False
    per_task_parameters: bool = False
    inference: str = ""
    model_features: tuple[str, ...] = ()


Schedule = Literal["sequential", "joint", "none"]
"""How the runner trains a method.

``sequential``: the continual protocol, one stage per task. ``joint``: one training stage on the
union of every task (the multitask upper bound). ``none``: evaluation only (zero-shot).
"""
