"""``joint``: the same LoRA as ``seqlora``, trained once on the union of every task.

The runner gives a ``joint`` method a single training stage on all tasks' samples. Trained by
epochs (the default), that stage takes as many optimizer steps as the sequential run's stages
together, so the two are compared at the same training budget; with ``train.max_steps`` set,
multiply it by the number of tasks to keep that equality.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvit_bench.harness import config_field
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA


@dataclass
class JointConfig:
    rank: int = config_field(16, help="LoRA rank r")
    alpha: float = config_field(32.0, help="LoRA alpha (the update is scaled by alpha / r)")
    dropout: float = config_field(0.0, help="dropout on the LoRA input")
    targets: list[str] = config_field(
        default_factory=list,
        help="language-model linear layers to adapt (empty: the model's default)",
    )

    merge_after_task = False


class Joint(SeqLoRA):
    name = "joint"
    config_class = JointConfig
    schedule = "joint"

    def __init__(self, config: JointConfig | None = None) -> None:
        super().__init__(config or JointConfig())
