"""``mrlora``: MR-LoRA (Zhao et al., "MLLM-CL: Continual Learning for Multimodal Large
Language Models", 2025; code github.com/bjzhb666/MLLM-CL).

* One LoRA expert per task in every target linear layer, each trained on its own task from
  the base model (the other experts are off while it trains; only its parameters change).
* After each task, a **router phase**: a few training samples of the task are stored
  (``replay_per_task``; the published router set holds 20 per task), and a separate router
  LoRA on the base model is trained on every stored sample so far to answer a routing
  prompt (the question plus a lettered list of the experts) with the letter of the sample's
  task. It trains through the same DeepSpeed engine with its own rate and epochs (published:
  router LoRA r=128, alpha=256, lr 5e-6, 40 epochs).
* Inference is two-stage: the router reads each sample's routing prompt and picks an expert,
  then the sample is answered with that expert alone. Samples of one batch may use
  different experts. The router's choice is the letter it finds most likely among the
  experts learned so far (the published code generates greedily and parses the letter,
  falling back to a random expert when the output is not a letter; choosing among the valid
  letters is the same decision whenever the greedy answer is valid, and never random).

Published expert settings (METHODS.md): r=128, lr 2e-5, 3 epochs (``train.lr``,
``train.epochs`` of the run). The stored samples, router steps and router time are
recorded in ``costs()`` (and so in every stage's row of ``stages.arrow``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import string
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cvit_bench.harness import MethodBase, config_field
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.io import atomic_write_bytes
from cvit_bench.harness.types import MethodRequirements, Sample, TaskInfo
from cvit_bench.plugins.methods import expert_lora

EXPERTS_FILE = "experts.safetensors"
LETTERS = string.ascii_uppercase
ROUTER_INTRO = "Which expert should answer this question? Do not answer it. Experts:"
ROUTER_OUTRO = "Answer with the expert's letter from the given choices directly."


@dataclass
class MRLoRAConfig:
    rank: int = config_field(128, help="rank of each task's LoRA expert (MR-LoRA: 128)")
    alpha: float = config_field(256.0, help="alpha of the experts (updates scaled by alpha / r)")
    targets: list[str] = config_field(
        default_factory=list,
        help="language-model linear layers to adapt (empty: the model's default)",
    )
    replay_per_task: int = config_field(
        20, help="training samples stored per task for the router phase (MR-LoRA: 20)"
    )
    router_rank: int = config_field(128, help="rank of the router LoRA (MR-LoRA: 128)")
    router_alpha: float = config_field(256.0, help="alpha of the router LoRA (MR-LoRA: 256)")
    router_lr: float = config_field(5e-6, help="learning rate of the router phase (MR-LoRA: 5e-6)")
    router_epochs: float = config_field(
        40.0, help="passes over the stored samples in each router phase (MR-LoRA: 40)"
    )
    router_max_steps: int | None = config_field(
        None, help="fixed number of router steps per phase (overrides router_epochs)"
    )
    describe_experts: bool = config_field(
        True,
        help="list each expert with its task's description in the routing prompt (as the "
        "published prompt does); off: names only (shorter prompts)",
    )
    route_batch_size: int = config_field(
        64, help="sequences per forward pass when the router scores the candidate letters"
    )


class MRLoRA(MethodBase):
    name = "mrlora"
    config_class = MRLoRAConfig
    requirements = MethodRequirements(
        stores_samples=True,
        per_task_parameters=True,
        inference="a router pass (a router LoRA picks one task expert per sample), then "
        "generation with the chosen expert",
        model_features=("lora",),
    )
    schedule = "sequential"

    def __init__(self, config: MRLoRAConfig | None = None) -> None:
        super().__init__(config or MRLoRAConfig())
        self.layers: dict[str, expert_lora.ExpertLoRALinear] = {}
        self.tasks: list[TaskInfo] = []
        self.replay: list[Sample] = []
        self.n_learned = 0
        self.current = 0
        self.phase = "expert"
        self.router_steps = 0
        self.router_phases = 0
        self.router_train_s = 0.0
        self.routed: dict[str, int] = {}

    # -- set-up --------------------------------------------------------------------------
    def setup(self, ctx: Any) -> None:
        c = self.config
        if ctx.config.train.zero_stage == 3:
            raise UsageError(
                "mrlora: its expert layers are saved and routed as whole tensors; ZeRO-3 "
                "partitions them. Use train.zero_stage 0-2"
            )
        self.tasks = list(ctx.tasks)
        if len(self.tasks) > len(LETTERS):
            raise UsageError(f"mrlora routes among at most {len(LETTERS)} tasks")
        targets = list(c.targets) or ctx.model.lora_targets()
        self.layers = expert_lora.attach_experts(
            ctx.model.model,
            targets,
            n_experts=len(self.tasks),
            rank=c.rank,
            scaling=c.alpha / c.rank,
            seed=ctx.config.seed,
            router_rank=c.router_rank,
            router_scaling=c.router_alpha / c.router_rank,
        )
        self.replay, self.n_learned = [], 0

    # -- expert training -----------------------------------------------------------------
    def before_task(self, ctx: Any, task: TaskInfo) -> None:
        self.current = [t.name for t in self.tasks].index(task.name)
        self.phase = "expert"
        expert_lora.set_mode(self.layers, "expert", active=self.current)
        expert_lora.train_only(
            expert_lora.expert_parameters(self.layers, self.current), self.layers
        )

    def trainable_parameters(self, ctx: Any) -> list[dict[str, Any]]:
        if self.phase == "router":
            params = expert_lora.router_parameters(self.layers)
            return [{"params": params, "lr": None, "name": "router"}]
        params = expert_lora.expert_parameters(self.layers, self.current)
        return [{"params": params, "lr": None, "name": f"expert_{self.current}"}]

    def after_task(self, ctx: Any, task: TaskInfo, samples: Any) -> None:
        self.n_learned = self.current + 1
        self.routed = {}
        self.replay += self.choose_replay(ctx, list(samples))
        if self.n_learned >= 2:
            self.train_router(ctx, task)
        expert_lora.train_only([], self.layers)
        expert_lora.set_mode(self.layers, "base")

    def choose_replay(self, ctx: Any, samples: list[Sample]) -> list[Sample]:
        """``replay_per_task`` samples of the task, drawn from ``(seed, task)``."""
        rng = random.Random(f"{ctx.config.seed}:{self.current}:mrlora")
        n = min(self.config.replay_per_task, len(samples))
        return [samples[i] for i in sorted(rng.sample(range(len(samples)), n))]

    # -- the router ----------------------------------------------------------------------
    def routing_prompt(self, sample: Sample, n_experts: int) -> str:
        """The router's question: the sample's question, then the lettered experts."""
        experts = []
        for k in range(n_experts):
            task = self.tasks[k]
            text = f"{LETTERS[k]}. {task.name}"
            if self.config.describe_experts and task.description:
                text += f" ({task.description})"
            experts.append(text)
        question = sample.prompt.replace("<image>", "").strip()
        return "\n".join([question, ROUTER_INTRO + " " + "; ".join(experts), ROUTER_OUTRO])

    def router_sample(self, sample: Sample, letter: str, n_experts: int) -> Sample:
        return Sample(
            id=f"router:{sample.task}:{sample.id}:{letter}",
            task="router",
            prompt=self.routing_prompt(sample, n_experts),
            answer=letter,
            image=sample.image,
        )

    def router_training_set(self) -> list[Sample]:
        names = [t.name for t in self.tasks]
        return [
            self.router_sample(s, LETTERS[names.index(s.task)], self.n_learned) for s in self.replay
        ]

    def train_router(self, ctx: Any, task: TaskInfo) -> None:
        """The router phase: train the router LoRA on the stored samples of every task."""
        c = self.config
        train = dataclasses.replace(
            ctx.config.train,
            lr=c.router_lr,
            epochs=c.router_epochs,
            max_steps=c.router_max_steps,
            projector_lr=None,
        )
        router_ctx = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, train=train))
        self.phase = "router"
        expert_lora.set_mode(self.layers, "router")
        expert_lora.train_only(expert_lora.router_parameters(self.layers), self.layers)
        start = time.perf_counter()
        try:
            engine = ctx.model.create_engine(router_ctx)
            stats = engine.train(router_ctx, task, self.router_training_set())
        finally:
            self.phase = "expert"
        self.router_train_s += time.perf_counter() - start
        self.router_steps += int(stats.get("steps", 0))
        self.router_phases += 1

    @torch.no_grad()
    def route(self, ctx: Any, samples: list[Sample]) -> list[int]:
        """The expert index the router picks for each sample."""
        n = self.n_learned
        if n <= 1:
            return [0] * len(samples)
        adapter = ctx.model
        candidates = [self.router_sample(s, LETTERS[k], n) for s in samples for k in range(n)]
        scores: list[float] = []
        param = next(adapter.model.parameters())
        with expert_lora.modes([(list(self.layers.values()), "router", {})]):
            size = max(1, self.config.route_batch_size)
            for start in range(0, len(candidates), size):
                batch = adapter.collate_train(
                    candidates[start : start + size], ctx.config.train.max_length
                )
                inputs = adapter.model_inputs(batch, param.device, param.dtype)
                labels = inputs.pop("labels")
                logits = adapter.model(**inputs, use_cache=False).logits.float()
                scores += _sequence_log_likelihood(logits, labels).tolist()
        return [
            max(range(n), key=lambda k, i=i: (scores[i * n + k], -k)) for i in range(len(samples))
        ]

    def inference(self, ctx: Any, batch: dict[str, Any]) -> Any:
        if self.n_learned == 0:
            return contextlib.nullcontext()
        samples = list(batch["samples"])
        choice = self.route(ctx, samples)
        for sample, k in zip(samples, choice):
            key = f"{sample.task}->{self.tasks[k].name}"
            self.routed[key] = self.routed.get(key, 0) + 1
        n_experts = len(self.tasks)
        weights = torch.zeros(len(samples), n_experts)
        weights[torch.arange(len(samples)), torch.tensor(choice)] = 1.0
        device = next(iter(self.layers.values())).lora_A[0].device
        return expert_lora.modes(
            [(list(self.layers.values()), "mix", {"weights": weights.to(device)})]
        )

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "n_learned": self.n_learned,
            "replay": list(self.replay),
            "router_steps": self.router_steps,
            "router_phases": self.router_phases,
            "router_train_s": self.router_train_s,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_learned = int(state["n_learned"])
        self.replay = list(state["replay"])
        self.router_steps = int(state["router_steps"])
        self.router_phases = int(state["router_phases"])
        self.router_train_s = float(state["router_train_s"])

    def save_checkpoint(self, ctx: Any, directory: Path) -> None:
        if ctx.rank != 0:
            return
        from safetensors.torch import save

        atomic_write_bytes(Path(directory) / EXPERTS_FILE, save(expert_lora.state(self.layers)))
        super().save_checkpoint(ctx, directory)

    def load_checkpoint(self, ctx: Any, directory: Path) -> None:
        from safetensors.torch import load_file

        expert_lora.load_state(self.layers, load_file(str(Path(directory) / EXPERTS_FILE)))
        super().load_checkpoint(ctx, directory)

    def costs(self) -> dict[str, Any]:
        layers = list(self.layers.values())
        per_expert = sum(m.lora_A[0].numel() + m.lora_B[0].numel() for m in layers)
        router = sum(
            m.router_A.numel() + m.router_B.numel() for m in layers if m.router_A is not None
        )
        return {
            "stored_samples": len(self.replay),
            "replay_per_task": self.config.replay_per_task,
            "experts": self.n_learned,
            "extra_params": per_expert * self.n_learned + router,
            "router_phases": self.router_phases,
            "router_steps": self.router_steps,
            "router_train_s": round(self.router_train_s, 3),
            "routing": dict(sorted(self.routed.items())),
        }


def _sequence_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of the log-probabilities of the labelled tokens of each row (next-token shift)."""
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    target = labels[:, 1:]
    mask = target != -100
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)
