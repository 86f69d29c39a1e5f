"""Per-task LoRA experts inside the language model's linear layers (HiDe-LLaVA, MR-LoRA).

:func:`attach_experts` replaces every target linear layer of the language model by an
:class:`ExpertLoRALinear`: the frozen base layer plus ``n_experts`` LoRA experts (``A_k`` of
shape ``rank x in``, ``B_k`` of shape ``out x rank``, ``B_k`` starting at zero) and, optionally,
one more adapter of its own rank (MR-LoRA's router). What a layer computes is set by its mode:

* ``base``: the frozen layer alone;
* ``expert``: ``W x + s B_k A_k x`` for the active expert ``k`` (training one task's expert);
* ``fused``: ``W x + s (sum_k B_k)(sum_k A_k) x`` over the first ``n`` experts (HiDe-LLaVA's
  task-general fusion: the factors are summed separately, then applied);
* ``mix``: ``W x + s sum_k w[b, k] B_k A_k x`` with per-sample weights ``w`` of shape
  ``(batch, n_experts)``, so that the samples of one generated batch can use different
  experts (HiDe-LLaVA's task-specific layer; MR-LoRA with one-hot weights);
* ``router``: ``W x + s_r B_r A_r x`` (MR-LoRA's router adapter).

``s = alpha / rank_total`` as in the published code. The module is plain torch: DeepSpeed
trains whichever parameters the method hands it, and the state saves as a flat
``{module name}.lora_A.{k}`` dictionary.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

MODES = ("base", "expert", "fused", "mix", "router")
_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


class ExpertLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` with LoRA experts; see the module docstring for the modes."""

    def __init__(
        self,
        base: nn.Linear,
        n_experts: int,
        rank: int,
        scaling: float,
        router_rank: int = 0,
        router_scaling: float = 1.0,
    ) -> None:
        super().__init__()
        self.base = base
        for param in base.parameters():
            param.requires_grad_(False)
        dtype, device = base.weight.dtype, base.weight.device
        self.rank, self.scaling = rank, scaling
        self.lora_A = nn.ParameterList(
            nn.Parameter(torch.zeros(rank, base.in_features, dtype=dtype, device=device))
            for _ in range(n_experts)
        )
        self.lora_B = nn.ParameterList(
            nn.Parameter(torch.zeros(base.out_features, rank, dtype=dtype, device=device))
            for _ in range(n_experts)
        )
        self.router_scaling = router_scaling
        if router_rank:
            self.router_A = nn.Parameter(
                torch.zeros(router_rank, base.in_features, dtype=dtype, device=device)
            )
            self.router_B = nn.Parameter(
                torch.zeros(base.out_features, router_rank, dtype=dtype, device=device)
            )
        else:
            self.router_A = self.router_B = None
        self.mode = "base"
        self.active = 0
        self.n_fused = 0
        self.weights: torch.Tensor | None = None

    @property
    def n_experts(self) -> int:
        return len(self.lora_A)

    def reset_expert(self, k: int, generator: torch.Generator) -> None:
        """peft's LoRA initialisation: ``A`` Kaiming-uniform (a=sqrt(5)), ``B`` zero."""
        _kaiming(self.lora_A[k], generator)
        with torch.no_grad():
            self.lora_B[k].zero_()

    def reset_router(self, generator: torch.Generator) -> None:
        _kaiming(self.router_A, generator)
        with torch.no_grad():
            self.router_B.zero_()

    def delta(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """``B_k A_k x`` (unscaled)."""
        return nn.functional.linear(nn.functional.linear(x, self.lora_A[k]), self.lora_B[k])

    def fused_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum A_k, sum B_k)`` over the first ``n_fused`` experts."""
        n = self.n_fused
        a = torch.stack(list(self.lora_A[:n])).sum(0)
        b = torch.stack(list(self.lora_B[:n])).sum(0)
        return a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        mode = self.mode
        if mode == "base":
            return out
        h = x.to(self.lora_A[0].dtype)
        if mode == "expert":
            update = self.scaling * self.delta(h, self.active)
        elif mode == "fused":
            if self.n_fused == 0:
                return out
            a, b = self.fused_factors()
            update = self.scaling * nn.functional.linear(nn.functional.linear(h, a), b)
        elif mode == "mix":
            weights = self.weights
            if weights is None or weights.shape[0] != x.shape[0]:
                raise RuntimeError(
                    f"expert weights {None if weights is None else tuple(weights.shape)} do not "
                    f"fit a batch of {x.shape[0]}"
                )
            update = torch.zeros_like(out, dtype=h.dtype)
            shape = (x.shape[0],) + (1,) * (x.dim() - 1)
            for k in range(weights.shape[1]):
                column = weights[:, k]
                if not bool(column.any()):  # an expert nobody uses adds an exact zero: skip it
                    continue
                w = column.to(h.dtype).reshape(shape)
                update = update + w * (self.scaling * self.delta(h, k))
        elif mode == "router":
            update = self.router_scaling * nn.functional.linear(
                nn.functional.linear(h, self.router_A), self.router_B
            )
        else:  # pragma: no cover - set_mode validates
            raise ValueError(mode)
        return out + update.to(out.dtype)

    def extra_repr(self) -> str:
        return (
            f"experts={self.n_experts}, rank={self.rank}, scaling={self.scaling:g}, "
            f"mode={self.mode}"
        )


def _kaiming(param: torch.Tensor, generator: torch.Generator) -> None:
    fan_in = param.shape[1]
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform_ with a=sqrt(5), as nn.Linear and peft
    with torch.no_grad():
        values = torch.rand(param.shape, generator=generator, dtype=torch.float32)
        param.copy_((values * 2 - 1) * bound)


def target_pattern(targets: list[str]) -> re.Pattern[str]:
    """Module names of ``targets`` inside the language model (never the vision tower)."""
    names = "|".join(sorted(set(targets)))
    return re.compile(rf".*language_model\..*\.({names})$")


def attach_experts(
    model: nn.Module,
    targets: list[str],
    n_experts: int,
    rank: int,
    scaling: float,
    seed: int,
    router_rank: int = 0,
    router_scaling: float = 1.0,
) -> dict[str, ExpertLoRALinear]:
    """Replace the target linear layers of ``model`` in place; return them by module name.

    Every parameter of ``model`` is frozen; the experts' ``A`` are drawn from ``seed`` (each
    expert its own draw, so expert ``k`` starts the same whatever the number of experts).
    """
    pattern = target_pattern(targets)
    for param in model.parameters():
        param.requires_grad_(False)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if pattern.match(name) and isinstance(module, nn.Linear)
    ]
    if not found:
        from cvit_bench.harness.errors import UsageError

        raise UsageError(f"no language-model linear layer matches the LoRA targets {targets}")
    layers: dict[str, ExpertLoRALinear] = {}
    for name, linear in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        wrapped = ExpertLoRALinear(linear, n_experts, rank, scaling, router_rank, router_scaling)
        setattr(parent, child, wrapped)
        layers[name] = wrapped
    for k in range(n_experts):
        gen = torch.Generator().manual_seed(seed * 1000 + k)
        for layer in layers.values():
            layer.reset_expert(k, gen)
    if router_rank:
        gen = torch.Generator().manual_seed(seed * 1000 + 999)
        for layer in layers.values():
            layer.reset_router(gen)
    for layer in layers.values():
        for param in layer.parameters():
            param.requires_grad_(False)
    return layers


def layer_index(name: str) -> int | None:
    """The decoder layer a module belongs to (``...layers.3.mlp.up_proj`` -> 3)."""
    match = _LAYER_INDEX.search(name + ".")
    return int(match.group(1)) if match else None


def num_layers(layers: dict[str, ExpertLoRALinear]) -> int:
    indices = [layer_index(n) for n in layers]
    return 1 + max(i for i in indices if i is not None)


def resolve_layers(spec: list[int], n_layers: int) -> list[int]:
    """Layer indices with Python-style negatives (``-1`` is the top layer), validated."""
    from cvit_bench.harness.errors import UsageError

    out = []
    for index in spec:
        resolved = index + n_layers if index < 0 else index
        if not 0 <= resolved < n_layers:
            raise UsageError(f"layer {index} does not exist: the language model has {n_layers}")
        out.append(resolved)
    return sorted(set(out))


def set_mode(layers: dict[str, ExpertLoRALinear] | list[ExpertLoRALinear], mode: str, **kw: Any):
    """Set ``mode`` (and ``active``, ``n_fused`` or ``weights``) on every layer given."""
    if mode not in MODES:
        raise ValueError(f"unknown expert mode {mode!r}; one of {MODES}")
    modules = list(layers.values()) if isinstance(layers, dict) else list(layers)
    for layer in modules:
        layer.mode = mode
        for key, value in kw.items():
            setattr(layer, key, value)


@contextmanager
def modes(assignments: list[tuple[list[ExpertLoRALinear], str, dict[str, Any]]]) -> Iterator[None]:
    """Set modes for the duration of a block, then restore what each layer had."""
    saved = []
    for modules, _, _ in assignments:
        for layer in modules:
            saved.append((layer, layer.mode, layer.active, layer.n_fused, layer.weights))
    try:
        for modules, mode, kw in assignments:
            set_mode(modules, mode, **kw)
        yield
    finally:
        for layer, mode, active, n_fused, weights in saved:
            layer.mode, layer.active, layer.n_fused, layer.weights = mode, active, n_fused, weights


def expert_parameters(layers: dict[str, ExpertLoRALinear], k: int) -> list[nn.Parameter]:
    return [p for layer in layers.values() for p in (layer.lora_A[k], layer.lora_B[k])]


def router_parameters(layers: dict[str, ExpertLoRALinear]) -> list[nn.Parameter]:
    return [p for layer in layers.values() for p in (layer.router_A, layer.router_B)]


def train_only(params: list[nn.Parameter], layers: dict[str, ExpertLoRALinear]) -> None:
    """Freeze every adapter parameter except ``params``."""
    for layer in layers.values():
        for param in layer.parameters():
            param.requires_grad_(False)
    for param in params:
        param.requires_grad_(True)


def state(layers: dict[str, ExpertLoRALinear]) -> dict[str, torch.Tensor]:
    """Every adapter tensor as a detached CPU copy, keyed ``{module}.{lora_A|lora_B}.{k}``."""
    out: dict[str, torch.Tensor] = {}
    for name, layer in layers.items():
        for key, param in layer.named_parameters():
            if key.startswith("base."):
                continue
            out[f"{name}.{key}"] = param.detach().cpu().clone().contiguous()
    return out


def load_state(layers: dict[str, ExpertLoRALinear], tensors: dict[str, torch.Tensor]) -> None:
    """Copy a :func:`state` dictionary back; every tensor must fit a layer exactly."""
    expected = state_keys(layers)
    missing = sorted(expected - set(tensors))
    unexpected = sorted(set(tensors) - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"expert state does not fit the model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    with torch.no_grad():
        for name, layer in layers.items():
            params = dict(layer.named_parameters())
            for key, param in params.items():
                if not key.startswith("base."):
                    param.copy_(tensors[f"{name}.{key}"].to(param.device, param.dtype))


def state_keys(layers: dict[str, ExpertLoRALinear]) -> set[str]:
    return {
        f"{name}.{key}"
        for name, layer in layers.items()
        for key, _ in layer.named_parameters()
        if not key.startswith("base.")
    }
