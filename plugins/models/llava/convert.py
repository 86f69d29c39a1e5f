"""Convert the original LLaVA-1.5 release into the Hugging Face llava format.

Inputs, as the LLaVA authors publish them:

* ``llm``: a Llama-format language model directory: Vicuna-v1.5 (for ``v15p``), or a full
  ``llava-v1.5-7b`` checkpoint whose shards also hold ``model.mm_projector.*`` (for ``v15pf``);
* ``projector``: ``mm_projector.bin`` from the pretraining release
  (``llava-v1.5-mlp2x-336px-pretrain-vicuna-7b-v1.5``); optional when ``llm`` holds it;
* ``clip``: the CLIP directory (``openai/clip-vit-large-patch14-336``), whole CLIP or vision only.

The output loads with ``LlavaForConditionalGeneration.from_pretrained``: the language model
under ``model.language_model``, CLIP's vision tower under ``model.vision_tower``, the two-layer
MLP projector as ``linear_1``/``linear_2``; the tokenizer gains ``<image>`` and ``<pad>`` (the
embedding rows are padded to a multiple of 64 with the mean embedding, as llava-hf's conversion
does); the image processor pads to square. Tensors are streamed shard by shard, so converting
a 13B model needs no more memory than its largest input shard.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import DataError
from cvit_bench.plugins.models.llava_common import IMAGE_TOKEN

PAD_TOKEN = "<pad>"
PAD_MULTIPLE = 64
LLAVA15_FEATURE_LAYER = -2
"""LLaVA-1.5 takes the penultimate CLIP layer (``mm_vision_select_layer = -2``)."""


def _weight_files(directory: Path, what: str) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = directory / index_name
        if index.exists():
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [f for f in files if not (directory / f).exists()]
            if missing:
                raise DataError(
                    f"{what} {directory}: shards listed in {index_name} are "
                    f"missing: {', '.join(missing)}"
                )
            return [directory / f for f in files]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (directory / name).exists():
            return [directory / name]
    raise DataError(
        f"{what} {directory} holds no weights (model.safetensors, "
        "pytorch_model.bin or a sharded index)"
    )


def _tensors(file: Path) -> Iterator[tuple[str, Any]]:
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                yield key, handle.get_tensor(key)
    else:
        import torch

        state = torch.load(str(file), map_location="cpu", weights_only=True, mmap=True)
        yield from state.items()


def _projector_key(key: str) -> str | None:
    """``model.mm_projector.0.weight`` -> ``model.multi_modal_projector.linear_1.weight``."""
    for prefix in ("model.mm_projector.", "mm_projector."):
        if key.startswith(prefix):
            index, _, rest = key[len(prefix) :].partition(".")
            layer = {"0": "linear_1", "2": "linear_2"}.get(index)
            if layer is None:
                raise DataError(
                    f"unexpected projector weight {key!r}: LLaVA-1.5's projector is "
                    "mlp2x_gelu (layers 0 and 2)"
                )
            return f"model.multi_modal_projector.{layer}.{rest}"
    return None


def _llm_key(key: str) -> str | None:
    if key.startswith("model.vision_tower") or key.startswith("model.mm_projector"):
        return None
    if key.startswith("model."):
        return "model.language_model." + key[len("model.") :]
    if key == "lm_head.weight":
        return key
    return None


def _pad_rows(tensor: Any, rows: int) -> Any:
    import torch

    if tensor.shape[0] >= rows:
        return tensor
    mean = tensor.float().mean(dim=0, keepdim=True).to(tensor.dtype)
    return torch.cat([tensor, mean.expand(rows - tensor.shape[0], -1)], dim=0)


def convert_llava(
    llm: str | Path, clip: str | Path, out: str | Path, projector: str | Path | None = None
) -> Path:
    """Write a llava-format directory to ``out`` from the original release; return ``out``."""
    from safetensors.torch import save_file
    from transformers import (
        AutoConfig,
        AutoTokenizer,
        CLIPVisionConfig,
        LlavaConfig,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    llm, clip, out = Path(llm), Path(clip), Path(out)
    for path, what in ((llm, "language model directory"), (clip, "CLIP directory")):
        if not (path / "config.json").exists():
            raise DataError(f"{what} {path} has no config.json")
    if projector is not None and not Path(projector).exists():
        raise DataError(
            f"projector file {projector} does not exist (mm_projector.bin of the "
            "LLaVA-1.5 pretraining release)"
        )
    if out.exists() and any(out.iterdir()):
        raise DataError(f"output directory {out} exists and is not empty")
    llm_files = _weight_files(llm, "language model directory")
    clip_files = _weight_files(clip, "CLIP directory")
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(str(llm))
    tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    vocab = math.ceil(len(tokenizer) / PAD_MULTIPLE) * PAD_MULTIPLE

    text_config = AutoConfig.from_pretrained(str(llm))
    text_config.vocab_size = vocab
    text_config.pad_token_id = tokenizer.pad_token_id
    for attr in (
        "mm_projector_type",
        "mm_vision_tower",
        "mm_hidden_size",
        "mm_vision_select_layer",
        "mm_vision_select_feature",
        "mm_use_im_start_end",
        "mm_use_im_patch_token",
        "image_aspect_ratio",
        "tune_mm_mlp_adapter",
        "freeze_mm_mlp_adapter",
        "mm_patch_merge_type",
        "tokenizer_padding_side",
        "tokenizer_model_max_length",
    ):
        if hasattr(text_config, attr):
            delattr(text_config, attr)
    if getattr(text_config, "model_type", "") != "llama":
        text_config = _as_llama(text_config)
    clip_raw = json.loads((clip / "config.json").read_text())
    vision_dict = clip_raw.get("vision_config", clip_raw)
    vision_config = CLIPVisionConfig(
        **{k: v for k, v in vision_dict.items() if k not in ("model_type", "architectures")}
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=LLAVA15_FEATURE_LAYER,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        image_seq_length=(vision_config.image_size // vision_config.patch_size) ** 2,
    )
    config.pad_token_id = tokenizer.pad_token_id

    weight_map: dict[str, str] = {}
    projector_seen: set[str] = set()

    def write(name: str, tensors: dict[str, Any]) -> None:
        if tensors:
            save_file(
                {k: v.contiguous() for k, v in tensors.items()},
                str(out / name),
                metadata={"format": "pt"},
            )
            weight_map.update(dict.fromkeys(tensors, name))

    for i, file in enumerate(llm_files):
        shard: dict[str, Any] = {}
        for key, tensor in _tensors(file):
            target = _projector_key(key)
            if target is not None:
                projector_seen.add(target)
            else:
                target = _llm_key(key)
                if target is None:
                    continue
                if target.endswith("embed_tokens.weight") or target == "lm_head.weight":
                    tensor = _pad_rows(tensor, vocab)
            shard[target] = tensor
        write(f"model-llm-{i + 1:05d}.safetensors", shard)
    if projector is not None:
        shard = {}
        for key, tensor in _tensors(Path(projector)):
            target = _projector_key(key)
            if target is None:
                raise DataError(
                    f"{projector}: unexpected weight {key!r} (expected "
                    "model.mm_projector.0/2.weight/bias)"
                )
            shard[target] = tensor
            projector_seen.add(target)
        write("model-projector.safetensors", shard)
    needed = {
        f"model.multi_modal_projector.{layer}.{kind}"
        for layer in ("linear_1", "linear_2")
        for kind in ("weight", "bias")
    }
    if not needed <= projector_seen:
        raise DataError(
            "no projector weights: pass --projector mm_projector.bin (from the LLaVA-1.5 "
            f"pretraining release) or a full LLaVA-1.5 checkpoint as --llm; missing "
            f"{sorted(needed - projector_seen)}"
        )
    inner = _vision_prefix()
    for i, file in enumerate(clip_files):
        shard = {
            "model.vision_tower." + inner + key[len("vision_model.") :]: tensor
            for key, tensor in _tensors(file)
            if key.startswith("vision_model.")
        }
        write(f"model-vision-{i + 1:05d}.safetensors", shard)
    if not any(k.startswith("model.vision_tower.") for k in weight_map):
        raise DataError(f"CLIP directory {clip} holds no vision_model.* weights")

    config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    _image_processor(clip, LlavaImageProcessorPil).save_pretrained(str(out))
    (out / "model.safetensors.index.json").write_text(
        json.dumps(
            {"metadata": {"format": "pt"}, "weight_map": dict(sorted(weight_map.items()))}, indent=2
        )
    )
    return out


def _vision_prefix() -> str:
    """How this transformers version names a CLIP vision tower's weights inside LLaVA
    (``vision_model.embeddings...`` in 4.x, ``embeddings...`` in 5.x)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    probe = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=8,
            intermediate_size=8,
            num_hidden_layers=1,
            num_attention_heads=1,
            image_size=4,
            patch_size=2,
        )
    )
    return "vision_model." if any(k.startswith("vision_model.") for k in probe.state_dict()) else ""


def _as_llama(config: Any) -> Any:
    from transformers import LlamaConfig

    data = config.to_dict()
    data.pop("model_type", None)
    return LlamaConfig(**data)


def _image_processor(clip: Path, cls: Any) -> Any:
    settings: dict[str, Any] = {}
    file = clip / "preprocessor_config.json"
    if file.exists():
        raw = json.loads(file.read_text())
        for key in ("size", "crop_size", "image_mean", "image_std", "resample", "rescale_factor"):
            if key in raw:
                settings[key] = raw[key]
        if isinstance(settings.get("crop_size"), int):
            side = settings["crop_size"]
            settings["crop_size"] = {"height": side, "width": side}
        if isinstance(settings.get("size"), int):
            settings["size"] = {"shortest_edge": settings["size"]}
    return cls(do_pad=True, **settings)
