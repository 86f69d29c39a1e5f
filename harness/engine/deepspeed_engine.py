"""DeepSpeed training and batched, sharded greedy evaluation.

Training (one ``deepspeed.initialize`` per task, because methods add parameters per task):

* parameter groups come from ``method.trainable_parameters(ctx)``; with ``train.projector_lr``
  set, projector parameters move to their own group at that rate;
* optimizer: DeepSpeed's ``AdamW`` with ``torch_adam`` (``torch.optim.AdamW``, nothing to
  compile); schedule: warm-up then cosine / linear / constant (``transformers.get_scheduler``),
  stepped once per optimizer step;
* data order: a permutation of the task's samples drawn from ``(seed, stage)``; epochs are
  concatenated permutations and every optimizer step takes one full global batch
  (``batch_size x grad_accum x world_size``). Micro-batch ``m`` of rank ``r`` is chunk
  ``m * world_size + r`` of that global batch, so one process with ``grad_accum = k`` and ``k``
  processes with ``grad_accum = 1`` see the same samples in every step;
* dropout: torch's generator is seeded before every micro-batch from ``(seed, stage, step,
  chunk)`` (:func:`micro_seed`), so a micro-batch draws the same masks whichever process
  computes it;
* a single fp32 CPU process at ZeRO-0 with ``grad_accum`` above 1 computes its micro-batches in
  forked copies of itself at once, one per spare core (:func:`train_processes`), and adds their
  gradients in micro-batch order: the weights are the same bits as in one process;
* precision: bf16 on GPU, fp32 on CPU (``train.precision``); ZeRO stage from
  ``train.zero_stage`` (stages 2 and 3 read ``configs/zero2.json`` / ``configs/zero3.json``);
  ``train.deepspeed_config`` is merged over the generated config last;
* below ZeRO-3, DeepSpeed is handed a :class:`TrainableView` of the model: a module whose
  parameters are the trainable ones only, whose forward is the whole model's. DeepSpeed walks
  its module's parameters several times a step (zeroing, clipping, gathering gradients for
  reduction); over a frozen multi-billion-parameter base that walk is noise, over the tiny
  model it was a tenth of every step. The frozen weights are placed and cast here as DeepSpeed
  would have (the accelerator; bf16 params, buffers kept). ZeRO-3 partitions the whole model's
  weights, so it gets the model itself, and when the task is trained the model is made whole
  again (:func:`unshard`): between tasks (evaluation, saving adapters, a method's after-task
  step, the next task's set-up) every rank holds every weight, as under the other stages.

Evaluation: the samples are split over ranks (sample ``i`` goes to rank ``i % world_size``),
each rank generates its share in batches sorted by prompt length, and the predictions are
gathered so that every rank returns all of them in input order. A single CPU process hands
every other batch to a forked copy of itself on a machine with cores to spare
(:func:`eval_processes`); the predictions are the same.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ..capabilities import accepts_keyword
from ..errors import UsageError
from ..parallel import ENV as WORKERS_ENV
from ..parallel import GradientWorkers, cpu_processes, forked_map
from ..types import Prediction, Sample, TaskInfo
from .distributed import all_gather_objects, ensure_distributed, local_device, rank_and_world

CONFIG_DIR = Path(__file__).parent / "configs"


CPU_ZERO_SETTINGS = {"overlap_comm": False, "contiguous_gradients": False, "reduce_scatter": False}
"""ZeRO-1/2 settings used on a machine without CUDA, over the shipped GPU configs: overlapping
the reduction with the backward pass needs CUDA streams, contiguous gradient buffers fight GPU
memory fragmentation, and a reduce-scatter saves bandwidth between GPUs. On a CPU each of them
only adds copying: a tiny-llava step under the shipped ZeRO-2 settings costs 17% more CPU time
than a plain PyTorch step, under these 1% (``scripts/bench_engine.py``). The results are the
same either way; ``train.deepspeed_config`` can set them back."""


def zero_config(stage: int, cuda: bool | None = None) -> dict[str, Any]:
    """The ``zero_optimization`` section shipped for ``stage``, with :data:`CPU_ZERO_SETTINGS`
    for stages 1 and 2 when ``cuda`` is false (default: whether CUDA is available)."""
    path = CONFIG_DIR / f"zero{stage}.json"
    config = json.loads(path.read_text()) if path.exists() else {"stage": stage}
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if stage in (1, 2) and not cuda:
        config.update(CPU_ZERO_SETTINGS)
    return config


def use_bf16(precision: str) -> bool:
    import torch

    if precision == "auto":
        return torch.cuda.is_available()
    return precision == "bf16"


def data_order(n: int, steps: int, global_batch: int, seed: int, stage: int) -> list[int]:
    """Sample indices for ``steps`` optimizer steps: concatenated seeded permutations."""
    import numpy as np

    rng = np.random.default_rng([seed, stage, 0x5EED])
    needed = steps * global_batch
    order: list[int] = []
    while len(order) < needed:
        order.extend(int(i) for i in rng.permutation(n))
    return order[:needed]


def count_steps(n: int, global_batch: int, epochs: float, max_steps: int | None) -> int:
    if max_steps is not None:
        return int(max_steps)
    return max(1, math.ceil(epochs * n / global_batch))


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def place_model(model: Any, bf16: bool) -> None:
    """Move ``model`` to this process's accelerator and, for ``bf16``, cast its floating-point
    parameters (not its buffers) to bf16: what ``deepspeed.initialize`` does to the module it is
    given."""
    import torch

    device = local_device()
    if next(model.parameters()).device != device:
        model.to(device)
    if bf16:
        for param in model.parameters():
            if param.is_floating_point() and param.dtype != torch.bfloat16:
                param.data = param.data.to(torch.bfloat16)


def trainable_view(model: Any, params: Sequence[Any]) -> Any:
    """A :class:`TrainableView` of ``model`` holding ``params``."""
    import torch

    class TrainableView(torch.nn.Module):
        """Owns the trainable parameters (the same tensors as the model's) and holds the model
        outside its module tree, so ``parameters()`` never walks the frozen base."""

        def __init__(self) -> None:
            super().__init__()
            self.trainable = torch.nn.ParameterList(params)
            self.held = (model,)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.held[0](*args, **kwargs)

    return TrainableView()


class DeepSpeedEngine:
    """The :class:`~cvit_bench.harness.protocols.Engine` for LLaVA-family adapters."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.last_stats: dict[str, Any] = {}

    # -- configuration -------------------------------------------------------------------
    def deepspeed_config(self, ctx: Any, world_size: int) -> dict[str, Any]:
        cfg = ctx.config.train
        config: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": cfg.batch_size,
            "gradient_accumulation_steps": cfg.grad_accum,
            "train_batch_size": cfg.batch_size * cfg.grad_accum * world_size,
            "gradient_clipping": cfg.max_grad_norm,
            "optimizer": {
                "type": "AdamW",
                "params": {
                    "lr": cfg.lr,
                    "betas": [0.9, 0.999],
                    "eps": 1e-8,
                    "weight_decay": cfg.weight_decay,
                    "torch_adam": True,
                    "adam_w_mode": True,
                },
            },
            "zero_optimization": zero_config(cfg.zero_stage),
            "bf16": {"enabled": use_bf16(cfg.precision)},
            "zero_allow_untested_optimizer": True,
            "steps_per_print": 10**9,
            "wall_clock_breakdown": False,
        }
        if cfg.deepspeed_config:
            path = Path(cfg.deepspeed_config)
            if not path.exists():
                raise UsageError(f"train.deepspeed_config: {path} does not exist")
            try:
                user = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise UsageError(f"train.deepspeed_config: {path} is not JSON: {exc}") from exc
            _merge(config, user)
        return config

    def param_groups(self, ctx: Any) -> list[dict[str, Any]]:
        """The method's groups with explicit rates, the projector split off when it has its own."""
        cfg = ctx.config.train
        model = ctx.model.model
        names = {id(p): n for n, p in model.named_parameters()}
        groups: list[dict[str, Any]] = []
        projector: list[Any] = []
        for group in ctx.method.trainable_parameters(ctx):
            params = [p for p in group["params"] if p.requires_grad]
            if cfg.projector_lr is not None:
                projector += [
                    p for p in params if self.adapter.is_projector_param(names.get(id(p), ""))
                ]
                params = [
                    p for p in params if not self.adapter.is_projector_param(names.get(id(p), ""))
                ]
            if params:
                lr = group.get("lr")
                extra = {k: v for k, v in group.items() if k not in ("params", "lr", "name")}
                groups.append({"params": params, "lr": cfg.lr if lr is None else lr, **extra})
        if projector:
            groups.append({"params": projector, "lr": cfg.projector_lr})
        return groups

    # -- training ------------------------------------------------------------------------
    def train(self, ctx: Any, task: TaskInfo | None, samples: Sequence[Sample]) -> dict[str, Any]:
        import deepspeed
        import torch
        from transformers import get_scheduler

        cfg = ctx.config.train
        rank, world = ensure_distributed()
        if not samples:
            return {
                "steps": 0,
                "samples": 0,
                "loss": math.nan,
                "trainable_params": 0,
                "peak_mem_mb": peak_memory_mb(),
            }
        stage_seed = ctx.config.seed * 1000 + ctx.stage
        torch.manual_seed(stage_seed)
        model = ctx.model.model
        groups = self.param_groups(ctx)
        params = [p for g in groups for p in g["params"]]
        trainable = sum(p.numel() for p in params)
        # stale gradients of parameters that trained earlier (a previous task, a pretraining
        # stage) and are frozen now hold memory, and under ZeRO-3, whose module is the whole
        # model, DeepSpeed's clipping norm would count them: they are dropped
        in_groups = {id(p) for p in params}
        for param in model.parameters():
            if id(param) not in in_groups:
                param.grad = None
        if trainable == 0:
            raise UsageError(f"method {ctx.method.name!r} gave the engine no trainable parameters")
        global_batch = cfg.batch_size * cfg.grad_accum * world
        steps = count_steps(len(samples), global_batch, cfg.epochs, cfg.max_steps)
        order = data_order(len(samples), steps, global_batch, ctx.config.seed, ctx.stage)
        warmup = math.ceil(cfg.warmup_ratio * steps)
        kind = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}[
            cfg.schedule
        ]

        def make_scheduler(optimizer: Any) -> Any:
            return get_scheduler(kind, optimizer, num_warmup_steps=warmup, num_training_steps=steps)

        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        model.train()
        module = model
        if cfg.zero_stage < 3:
            place_model(model, use_bf16(cfg.precision))
            module = trainable_view(model, params)
        ds_engine, _, _, _ = deepspeed.initialize(
            model=module,
            model_parameters=groups,
            lr_scheduler=make_scheduler,
            config=self.deepspeed_config(ctx, world),
            dist_init_required=False,
        )
        if world == 1 and cfg.zero_stage == 0:
            # an all-reduce over a world of one changes nothing but costs a gloo round trip
            ds_engine.enable_backward_allreduce = False
        dtype = torch.bfloat16 if use_bf16(cfg.precision) else torch.float32

        def micro_step(idx: list[int], step: int, chunk: int) -> float:
            """Forward and backward of one micro-batch; its loss. Dropout draws from a seed of
            the micro-batch's place in the run, the same in any process that computes it."""
            seed_generator(ds_engine.device, micro_seed(stage_seed, step, chunk))
            batch = self.adapter.collate_train([samples[i] for i in idx], cfg.max_length)
            outputs = self.adapter.forward(ds_engine, batch, ds_engine.device, dtype)
            loss = ctx.method.training_loss(ctx, batch, outputs)
            ds_engine.backward(loss)
            return float(loss.detach())

        processes = train_processes(ctx.method, world, ds_engine.device, cfg)
        if processes > 1 and not GradientWorkers.fits(processes, cfg.grad_accum, params):
            processes = 1
        pool = None
        if processes > 1:
            pool = GradientWorkers(
                processes,
                cfg.grad_accum,
                params,
                lambda job: micro_step(*job),
                "training",
                f"{WORKERS_ENV}=1 trains in this process (the same result)",
            )
        losses: list[float] = []
        start, start_cpu = time.perf_counter(), time.process_time()
        try:
            for step in range(steps):
                batch_ids = order[step * global_batch : (step + 1) * global_batch]
                jobs = []
                for micro in range(cfg.grad_accum):
                    chunk = micro * world + rank
                    idx = batch_ids[chunk * cfg.batch_size : (chunk + 1) * cfg.batch_size]
                    jobs.append((idx, step, chunk))
                if pool is not None:
                    pool.send(jobs)
                step_loss = 0.0
                for micro, job in enumerate(jobs):
                    if pool is None or pool.owner(micro) == 0:
                        loss = micro_step(*job)
                    else:  # a worker's micro-batch, added where this process would have made it
                        loss = pool.add_into(micro)
                    ds_engine.step()
                    step_loss += loss / cfg.grad_accum
                losses.append(_mean_over_ranks(step_loss, world, ds_engine.device))
        finally:
            if pool is not None:
                pool.close()
        # what comes next (a method's after-task step) draws from a seed that does not depend
        # on which process computed the last micro-batch
        torch.manual_seed(micro_seed(stage_seed, steps, 0))
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_disable()
        model.eval()
        if cfg.zero_stage == 3:
            unshard(ds_engine, model)
        else:
            ds_engine.destroy()
        tail = losses[-max(1, min(10, len(losses))) :]
        self.last_stats = {
            "steps": steps,
            "samples": steps * global_batch,
            "loss": losses[-1],
            "loss_last10": sum(tail) / len(tail),
            "loss_first": losses[0],
            "trainable_params": trainable,
            "peak_mem_mb": peak_memory_mb(),
            "train_wall_s": wall,
            "train_cpu_s": cpu,
            "samples_per_s": steps * global_batch / max(wall, 1e-9),
            "world_size": world,
            "processes": processes,
            "global_batch": global_batch,
            "losses": losses,
        }
        return dict(self.last_stats)

    # -- evaluation ----------------------------------------------------------------------
    def generation_model(self, ctx: Any) -> Any:
        model = ctx.model.model
        place_model(model, bf16=False)
        return model

    def predict(self, ctx: Any, task: TaskInfo, samples: Sequence[Sample]) -> list[Prediction]:
        import torch

        rank, world = rank_and_world()
        model = self.generation_model(ctx)
        model.eval()
        param = next(model.parameters())
        device = param.device
        dtype = param.dtype if param.dtype in (torch.bfloat16, torch.float16) else torch.float32
        if ctx.config.eval.max_new_tokens is not None:
            max_new = ctx.config.eval.max_new_tokens
        else:
            max_new = task.max_new_tokens
        mine = [i for i in range(len(samples)) if i % world == rank]
        prompts = {i: self.adapter.encode_prompt(samples[i]) for i in mine}
        mine.sort(key=lambda i: (-len(prompts[i]), i))
        size = max(1, ctx.config.eval.batch_size)
        batches = [mine[start : start + size] for start in range(0, len(mine), size)]
        collate = self.adapter.collate_eval
        reuse = accepts_keyword(collate, "encoded")  # tokenised once, not again per batch

        def answer(k: int) -> list[str]:
            chosen = [samples[i] for i in batches[k]]
            if reuse:
                batch = collate(chosen, encoded=[prompts[i] for i in batches[k]])
            else:
                batch = collate(chosen)
            routing = ctx.method.inference(ctx, batch) if ctx.method else nullcontext()
            with routing:
                return self.adapter.generate(model, batch, max_new, device, dtype)

        workers = eval_processes(ctx.method, world, device, len(batches))
        texts = forked_map(answer, len(batches), workers, f"evaluating {task.name}")
        results = [pair for idx, out in zip(batches, texts) for pair in zip(idx, out)]
        gathered = all_gather_objects(results, world)
        by_index = dict(item for part in gathered for item in part)
        return [
            Prediction(
                id=samples[i].id, text=by_index[i], prompt=self.adapter.template.render(samples[i])
            )
            for i in range(len(samples))
        ]


def eval_processes(method: Any, world: int, device: Any, batches: int) -> int:
    """Processes generating a CPU rank's evaluation batches at once.

    A single CPU process leaves the machine's other cores idle while it evaluates; forked
    copies of it (:func:`~cvit_bench.harness.parallel.forked_map`) take every n-th batch. Each
    batch is the same batch, generated on the same number of threads, so the predictions are
    the same bits as in one process. One process when there are several ranks (they share the
    cores already), on an accelerator, and for a method whose ``inference`` hook is its own: the
    hook may keep state (hide and MR-LoRA count where they route each sample), and what it did
    in a worker would be lost. ``CVIT_BENCH_WORKERS`` caps the processes."""
    from ..protocols import MethodBase

    if world > 1 or getattr(device, "type", "cpu") != "cpu" or batches < 2:
        return 1
    if method is not None and type(method).inference is not MethodBase.inference:
        return 1
    return cpu_processes(batches)


def train_processes(method: Any, world: int, device: Any, cfg: Any) -> int:
    """Processes computing a CPU rank's micro-batches at once.

    With ``train.grad_accum`` above 1, an optimizer step adds the gradients of several
    micro-batches; forked copies of this process
    (:class:`~cvit_bench.harness.parallel.GradientWorkers`) compute some of them, and they are
    added in micro-batch order, as one process adds them, so the weights are the same bits.
    Only where nothing else can differ: one rank (several share the cores already), on a CPU,
    in fp32, under ZeRO-0 (ZeRO-1 and 2 take the gradients into their own buffers as backward
    runs), and for a method whose ``training_loss`` is the default one: a method that adds
    terms may keep state from the forward passes (a teacher's outputs, counts), which a worker
    would lose. ``CVIT_BENCH_WORKERS`` caps the processes."""
    from ..parallel import can_fork
    from ..protocols import MethodBase

    if world > 1 or getattr(device, "type", "cpu") != "cpu" or cfg.grad_accum < 2:
        return 1
    if cfg.zero_stage != 0 or use_bf16(cfg.precision) or not can_fork():
        return 1
    if method is not None and type(method).training_loss is not MethodBase.training_loss:
        return 1
    return cpu_processes(cfg.grad_accum)


def seed_generator(device: Any, seed: int) -> None:
    """Seed the random generator that ``device``'s dropout draws from: the CPU's, or the current
    GPU's. (``torch.manual_seed`` seeds every backend, which costs a millisecond a call.)"""
    import torch

    torch.default_generator.manual_seed(seed)
    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.manual_seed(seed)


def micro_seed(stage_seed: int, step: int, chunk: int) -> int:
    """The torch seed of micro-batch ``chunk`` of optimizer step ``step``: where it falls in
    the global batch, not which process or rank computes it."""
    import hashlib

    digest = hashlib.blake2b(f"{stage_seed}:{step}:{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def unshard(ds_engine: Any, model: Any) -> None:
    """Make ``model`` an ordinary module again after a ZeRO-3 engine trained it.

    ZeRO-3 keeps each rank's shard of every weight, empties the parameters between uses,
    replaces each module's parameter table with one that fetches on access, and hooks every
    module. Here every weight is gathered in full, the engine (its hooks) is destroyed, and
    every parameter is replaced by a plain one holding the full weight, shared parameters
    staying shared; ``requires_grad`` is kept."""
    import deepspeed
    import torch

    modules = list(model.modules())
    originals = {id(p): p for m in modules for p in m._parameters.values() if p is not None}
    full: dict[int, Any] = {}
    with deepspeed.zero.GatheredParameters(list(originals.values())):
        for key, param in originals.items():
            full[key] = param.detach().clone()
    ds_engine.destroy()
    fresh = {
        key: torch.nn.Parameter(full[key], requires_grad=originals[key].requires_grad)
        for key in originals
    }
    for module in modules:
        module._parameters = {
            name: (None if p is None else fresh[id(p)]) for name, p in module._parameters.items()
        }


def _mean_over_ranks(value: float, world: int, device: Any) -> float:
    """The global batch's loss: the mean of every rank's micro-batch losses."""
    if world == 1:
        return value
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / world


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
