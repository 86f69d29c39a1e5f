"""A sequential-fine-tuning method for the fake model, and the base for method sketches."""

from __future__ import annotations

import collections
from typing import Any, ClassVar

from cvit_bench.harness.protocols import MethodBase, RunContext


class FakeSequential(MethodBase):
    """Fine-tunes the fake model task after task (the fake counterpart of ``seqlora``).

    The fake model's memory is model state the method changed, so the method checkpoints it,
    as a LoRA method checkpoints its adapters.
    """

    name: ClassVar[str] = "fake-seq"

    def setup(self, ctx: RunContext) -> None:
        self.network = ctx.model.model  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        return {
            "memory": list(self.network.memory.items()),
            "default_answer": self.network.default_answer,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.memory = collections.OrderedDict(state["memory"])
        self.network.default_answer = state["default_answer"]
