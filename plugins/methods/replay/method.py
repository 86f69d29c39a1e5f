"""``replay``: experience replay on top of sequential LoRA (the MCITlib ``Replay`` baseline).

After each task a seeded selection of that task's training samples enters a buffer; every later
task trains on its own samples plus replayed ones. The adapter is the ``seqlora`` one (CoIN:
one LoRA keeps training). Only the samples' references (ids, prompts, answers, image paths)
are kept, in the method state of every stage checkpoint, so a resumed run replays exactly the
same samples.

Buffer (``selection``):

* ``random``: from each task keep ``per_task`` samples (or ``fraction`` of them), drawn
  uniformly without replacement; the buffer grows by one quota per task.
* ``reservoir``: one buffer of at most ``capacity`` samples over the whole stream (Vitter's
  algorithm R): every sample seen so far has the same chance of being in it, whatever task it
  came from.

Mixing (``mix_ratio``): ``None`` appends the whole buffer to the new task's samples (the usual
"train on new data + stored data" recipe); a number ``r`` appends ``round(r x n_new)`` buffer
samples drawn without replacement (cycled through the buffer when more are asked for than it
holds). Both draws are seeded by the run seed and the stage, never by global random state.

Defaults. The LoRA settings are ``seqlora``'s (r=16, alpha=32: MCITlib's LoRA-FT on UCIT).
No buffer size for LLaVA-1.5-7B was read from MCITlib's public code here, so the defaults are
our choice and say so: 10% of each task's samples (``fraction = 0.1``), the size most CVIT
papers quote for their replay baselines, and the whole buffer mixed in (``mix_ratio = None``).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cvit_bench.harness import config_field
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.types import MethodRequirements, Sample, TaskInfo
from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA


@dataclass
class ReplayConfig(lora_common.LoRAOptions):
    selection: str = config_field(
        "random",
        choices=("random", "reservoir"),
        help="random: a fixed quota from every task; reservoir: one bounded buffer over the "
        "whole stream (algorithm R)",
    )
    per_task: int = config_field(
        100, help="samples kept from each task (selection=random; ignored when fraction is set)"
    )
    fraction: float | None = config_field(
        0.1,
        help="keep this fraction of each task's training samples, rounded up (selection="
        "random); null: keep per_task samples",
    )
    capacity: int = config_field(500, help="total buffer size (selection=reservoir)")
    mix_ratio: float | None = config_field(
        None,
        help="replayed samples per new sample; null: the whole buffer is appended to each "
        "new task's data",
    )

    merge_after_task = False


class Replay(SeqLoRA):
    name = "replay"
    config_class = ReplayConfig
    requirements = MethodRequirements(stores_samples=True, model_features=("lora",))
    schedule = "sequential"

    def __init__(self, config: ReplayConfig | None = None) -> None:
        super().__init__(config or ReplayConfig())
        c = self.config
        if c.fraction is not None and not 0.0 < c.fraction <= 1.0:
            raise UsageError(f"method replay: fraction must be in (0, 1], got {c.fraction}")
        if c.mix_ratio is not None and c.mix_ratio < 0:
            raise UsageError(f"method replay: mix_ratio must be >= 0, got {c.mix_ratio}")
        if c.per_task < 0 or c.capacity < 0:
            raise UsageError("method replay: per_task and capacity must be >= 0")
        self.buffer: list[Sample] = []
        self.seen = 0  # samples offered to the reservoir so far
        self._new: list[Sample] = []

    # -- the buffer ----------------------------------------------------------------------
    def quota(self, n: int) -> int:
        """How many of a task's ``n`` samples ``selection=random`` keeps."""
        c = self.config
        k = math.ceil(c.fraction * n) if c.fraction is not None else c.per_task
        return min(n, k)

    def store(self, samples: Sequence[Sample], seed: int, stage: int) -> None:
        """Offer one task's samples to the buffer (seeded by ``(seed, stage)`` only)."""
        rng = random.Random(f"replay-store-{seed}-{stage}")
        if self.config.selection == "random":
            self.buffer.extend(rng.sample(list(samples), self.quota(len(samples))))
            return
        capacity = self.config.capacity
        for sample in samples:
            self.seen += 1
            if len(self.buffer) < capacity:
                self.buffer.append(sample)
            else:
                slot = rng.randrange(self.seen)
                if slot < capacity:
                    self.buffer[slot] = sample

    def replayed(self, n_new: int, seed: int, stage: int) -> list[Sample]:
        """The buffer samples mixed into a task of ``n_new`` samples."""
        if not self.buffer:
            return []
        ratio = self.config.mix_ratio
        if ratio is None:
            return list(self.buffer)
        k = round(ratio * n_new)
        rng = random.Random(f"replay-mix-{seed}-{stage}")
        out: list[Sample] = []
        while len(out) < k:
            out.extend(rng.sample(self.buffer, min(len(self.buffer), k - len(out))))
        return out

    # -- protocol ------------------------------------------------------------------------
    def training_samples(
        self, ctx: Any, task: TaskInfo, samples: Sequence[Sample]
    ) -> Sequence[Sample]:
        self._new = list(samples)
        return self._new + self.replayed(len(self._new), ctx.config.seed, ctx.stage)

    def after_task(self, ctx: Any, task: TaskInfo | None, samples: Any) -> None:
        self.store(self._new, ctx.config.seed, ctx.stage)
        self._new = []
        super().after_task(ctx, task, samples)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": list(self.buffer), "seen": self.seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer = list(state.get("buffer", []))
        self.seen = int(state.get("seen", 0))

    def costs(self) -> dict[str, Any]:
        by_task = Counter(s.task for s in self.buffer)
        return {"stored_samples": len(self.buffer), "stored_by_task": dict(sorted(by_task.items()))}
