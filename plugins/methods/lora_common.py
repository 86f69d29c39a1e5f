"""LoRA helpers shared by the LoRA-based methods (seqlora, joint, and later EWC, O-LoRA, ...).

Adapters are peft LoRA adapters on the language model's linear layers only: the vision tower's
attention layers carry the same names (``q_proj``, ...) and are never adapted, as in LLaVA.
When the projector trains (``train.projector_lr`` set), it becomes a peft ``modules_to_save``
module: a trainable copy saved with the adapter, so a saved adapter directory holds everything
that changed and loads with plain ``peft.PeftModel.from_pretrained``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness.config import config_field

PROJECTOR_MODULE = "multi_modal_projector"


@dataclass
class LoRAOptions:
    """The adapter options every LoRA-based method has; a method's config subclasses it and
    adds its own fields (or redeclares one to change its default)."""

    rank: int = config_field(16, help="LoRA rank r")
    alpha: float = config_field(32.0, help="LoRA alpha (the update is scaled by alpha / r)")
    dropout: float = config_field(0.0, help="dropout on the LoRA input")
    targets: list[str] = config_field(
        default_factory=list,
        help="language-model linear layers to adapt, by name suffix (empty: the model's "
        "default, all attention and MLP projections)",
    )


ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"


def target_regex(targets: list[str]) -> str:
    """A peft ``target_modules`` regex matching ``targets`` inside the language model only."""
    names = "|".join(sorted(set(targets)))
    return rf".*language_model\..*\.({names})$"


def projector_module(ctx: Any) -> str:
    """The name of the model's vision projector (``multi_modal_projector`` in LLaVA,
    ``merger`` in Qwen2-VL), as its adapter declares it."""
    return getattr(ctx.model, "projector_module", PROJECTOR_MODULE)


def lora_config(
    rank: int,
    alpha: float,
    dropout: float,
    targets: list[str],
    train_projector: bool,
    projector: str = PROJECTOR_MODULE,
) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_regex(targets),
        bias="none",
        modules_to_save=[projector] if train_projector else None,
    )


def add_lora(model: Any, config: Any, seed: int) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter whose initialisation depends only on ``seed``."""
    import torch
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, config)


def merge(peft_model: Any) -> Any:
    """Fold the adapter (and a trained projector copy) into the base weights; return the base."""
    return peft_model.merge_and_unload()


def adapter_state(peft_model: Any) -> dict[str, Any]:
    """The adapter's weights as peft saves them, detached CPU copies."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model)
    return {k: v.detach().cpu().clone().contiguous() for k, v in state.items()}


def save_adapter(peft_model: Any, directory: str | Path) -> None:
    """``save_pretrained`` in peft's format (``adapter_config.json`` + safetensors)."""
    peft_model.save_pretrained(str(directory))


def write_adapter(directory: str | Path, config: Any, state: dict[str, Any]) -> None:
    """Write an adapter held in memory (``adapter_state``) in peft's on-disk format."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(directory))
    save_file(state, str(directory / "adapter_model.safetensors"), metadata={"format": "pt"})


def load_adapter_weights(peft_model: Any, directory: str | Path) -> None:
    """Load saved adapter weights into an already wrapped model (same config)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(Path(directory) / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(peft_model, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise RuntimeError(f"adapter in {directory} does not fit the model: {unexpected[:3]}")


def merge_saved_adapter(base: Any, directory: str | Path) -> Any:
    """Apply a saved adapter to ``base`` with plain peft and merge it in."""
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(directory)).merge_and_unload()


def adapter_config_of(directory: str | Path) -> dict[str, Any]:
    return json.loads((Path(directory) / "adapter_config.json").read_text())


@contextmanager
def gathered(model: Any) -> Iterator[None]:
    """Full parameters inside the block under ZeRO-3 (a collective: every rank enters it);
    nothing happens when the parameters are not partitioned."""
    params = [p for p in model.parameters() if hasattr(p, "ds_id")]
    if not params:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        yield


def trainable_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# -- helpers for methods with their own adapter layers and extra loss terms -----------------
# (replay, ewc, lwf, moelora, olora, l2p). Nothing above this line changes for seqlora/joint.


def target_pattern(targets: list[str]) -> Any:
    """The compiled ``target_regex``: which module names (inside the language model) adapt."""
    import re

    return re.compile(target_regex(targets))


def replace_linears(model: Any, targets: list[str], make: Any) -> dict[str, Any]:
    """Replace every ``nn.Linear`` of the language model whose name ends in one of ``targets``
    by ``make(name, linear)``; return the new modules by name, in model order.

    The vision tower's layers carry the same suffixes and are left alone, as in LLaVA. A model
    in which nothing matches is a usage error naming the targets.
    """
    from torch import nn

    from cvit_bench.harness.errors import UsageError

    pattern = target_pattern(targets)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and pattern.match(name)
    ]
    if not found:
        raise UsageError(
            f"no language-model linear layer matches the LoRA targets {sorted(set(targets))}"
        )
    out: dict[str, Any] = {}
    for name, linear in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapper = make(name, linear)
        setattr(parent, child, wrapper)
        out[name] = wrapper
    return out


def kaiming_init_(weight: Any) -> None:
    """LoRA's A initialisation (peft's default: Kaiming uniform with a = sqrt(5))."""
    import math

    from torch import nn

    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))


def set_projector_trainable(
    model: Any, trainable: bool, projector: str = PROJECTOR_MODULE
) -> list[str]:
    """Make the vision projector (not wrapped by peft) train or not; return its parameter names."""
    names = []
    for name, param in model.named_parameters():
        if projector in name:
            param.requires_grad_(trainable)
            names.append(name)
    return names


def trains_projector(ctx: Any) -> bool:
    return ctx.config.train.projector_lr is not None


def named_trainable(model: Any) -> dict[str, Any]:
    """``{name: parameter}`` of every parameter that requires a gradient, in model order."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def cpu_copy(tensors: dict[str, Any]) -> dict[str, Any]:
    """Detached, contiguous CPU fp32 copies (method state that goes into checkpoints)."""
    return {k: v.detach().float().cpu().clone().contiguous() for k, v in tensors.items()}


def save_tensors(path: str | Path, tensors: dict[str, Any]) -> None:
    """Write ``tensors`` as safetensors through a temporary file (a crash never leaves half)."""
    import os
    import tempfile

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            tmp,
            metadata={"format": "pt"},
        )
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_tensors(path: str | Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(path))


def load_into(model: Any, tensors: dict[str, Any], where: str | Path) -> None:
    """Copy saved tensors into the model's parameters of the same names (any must exist)."""
    import torch

    params = dict(model.named_parameters())
    missing = [k for k in tensors if k not in params]
    if missing:
        raise RuntimeError(f"state in {where} does not fit the model: {missing[:3]}")
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].dtype))


def llava_module(model: Any) -> Any:
    """The Hugging Face LLaVA model inside any wrapping (peft, a method's own layers)."""
    for module in model.modules():
        if hasattr(module, "get_image_features") and hasattr(module, "lm_head"):
            return module
    raise TypeError(f"no LLaVA model (get_image_features + lm_head) inside {type(model).__name__}")


def device_and_dtype(model: Any) -> tuple[Any, Any]:
    """Where the model lives and the dtype its inputs should have (fp32 unless bf16/fp16)."""
    import torch

    param = next(model.parameters())
    dtype = param.dtype if param.dtype in (torch.bfloat16, torch.float16) else torch.float32
    return param.device, dtype


def answer_mask(labels: Any) -> Any:
    """``[B, S-1]`` booleans: which logits (positions ``0..S-2``) predict an answer token."""
    return labels[:, 1:] != -100


def all_reduce_sum(tensors: list[Any], world_size: int) -> None:
    """Sum tensors over ranks in place (nothing to do alone)."""
    if world_size <= 1:
        return
    import torch.distributed as dist

    for tensor in tensors:
        dist.all_reduce(tensor)


def refuse_zero3(ctx: Any, method: str, why: str) -> None:
    """Methods that read parameters outside the engine's forward cannot see ZeRO-3 shards."""
    from cvit_bench.harness.errors import UsageError

    if ctx.config.train.zero_stage == 3:
        raise UsageError(
            f"method {method!r} {why}, which ZeRO-3 partitions away: use train.zero_stage 0, 1 or 2"
        )
