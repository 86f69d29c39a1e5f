"""``joint``: the same LoRA as ``seqlora``, trained once on the union of every task.

The runner gives a ``joint`` method a single training stage on all tasks' samples. Trained by
epochs (the default), that stage takes as many optimizer steps as the sequential run's stages
together, so the two are compared at the same training budget; with ``train.max_steps`` set,
multiply it by the number of tasks to keep that equality.
"""

from __future__ import annotations

from dataclasses import dataclass

from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.methods.seqlora.method import SeqLoRA


@dataclass
class JointConfig(lora_common.LoRAOptions):
    merge_after_task = False


class Joint(SeqLoRA):
    name = "joint"
    config_class = JointConfig
    schedule = "joint"

    def __init__(self, config: JointConfig | None = None) -> None:
        super().__init__(config or JointConfig())
