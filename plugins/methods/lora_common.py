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
from pathlib import Path
from typing import Any

PROJECTOR_MODULE = "multi_modal_projector"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"


def target_regex(targets: list[str]) -> str:
    """A peft ``target_modules`` regex matching ``targets`` inside the language model only."""
    names = "|".join(sorted(set(targets)))
    return rf".*language_model\..*\.({names})$"


def lora_config(
    rank: int, alpha: float, dropout: float, targets: list[str], train_projector: bool
) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_regex(targets),
        bias="none",
        modules_to_save=[PROJECTOR_MODULE] if train_projector else None,
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
