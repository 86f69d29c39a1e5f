"""Which methods can run with which models, decided before a run starts.

A model adapter lists what it offers methods in a ``features`` class attribute (a set of the
names below); a method lists what it needs in ``requirements.model_features``. The runner calls
:func:`check_compatible` when it is constructed, before anything is written or trained, so a
method that cannot use a model says so at once, naming both and the missing feature.

A model adapter may also define a classmethod ``preflight(config)`` that raises ``UsageError``
for options the machine cannot honour (``attn_implementation=flash_attention_2`` without the
``flash-attn`` package or a GPU); the runner calls it at the same point.

Added in API 1.1. Feature names are only added; a third-party adapter or method may use its
own names (``"myorg:feature"``), which the check compares like any other.
"""

from __future__ import annotations

import inspect
from typing import Any

from .errors import UsageError

MODEL_FEATURES: dict[str, str] = {
    "lora": "a torch model whose language-model linear layers lora_targets() names (under a "
    "module called language_model, as peft and the built-in adapter layers expect), batched "
    "through collate_train/collate_eval and called through forward/model_inputs/generate",
    "image-embedding": "pooled_image_features(paths): one frozen feature vector per image from "
    "the model's own vision encoder",
    "llava-internals": "a LlavaForConditionalGeneration: a CLIP vision tower read at "
    "vision_feature_layer, one <image> token per image feature, 1-D positions",
}
"""The feature names the built-in plugins use, with what each promises."""


def model_features(model_cls: Any) -> frozenset[str]:
    """What a model adapter class offers (nothing when it declares no ``features``)."""
    return frozenset(getattr(model_cls, "features", ()) or ())


def method_needs(method_cls: Any) -> tuple[str, ...]:
    """What a method class needs from the model (``requirements.model_features``)."""
    requirements = getattr(method_cls, "requirements", None)
    return tuple(getattr(requirements, "model_features", ()) or ())


def missing_features(method_cls: Any, model_cls: Any) -> list[str]:
    """The features ``method_cls`` needs that ``model_cls`` does not offer, in declared order."""
    offered = model_features(model_cls)
    return [f for f in method_needs(method_cls) if f not in offered]


def check_compatible(
    method: str, method_cls: Any, model: str, model_cls: Any, model_config: Any = None
) -> None:
    """Raise ``UsageError`` when the method needs a feature the model lacks, or when the
    model's ``preflight`` refuses its configuration on this machine."""
    missing = missing_features(method_cls, model_cls)
    if missing:
        why = "; ".join(f"{f}: {MODEL_FEATURES.get(f, 'a third-party feature')}" for f in missing)
        offered = ", ".join(sorted(model_features(model_cls))) or "none"
        raise UsageError(
            f"method {method!r} cannot run with model {model!r}: it needs the model feature(s) "
            f"{', '.join(missing)} ({why}), and {model!r} offers only: {offered}. "
            "See 'cvit-bench describe method NAME' and 'cvit-bench describe model NAME'."
        )
    preflight = getattr(model_cls, "preflight", None)
    if preflight is not None and model_config is not None:
        preflight(model_config)


def accepts_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` takes the keyword ``name``: optional adapter parameters (a ``streamer``
    for ``generate``, prompts already ``encoded`` for ``collate_eval``) are passed only then."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
