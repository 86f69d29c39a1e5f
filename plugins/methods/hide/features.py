"""The image and instruction features HiDe-LLaVA compares with its task anchors.

Two encoders, chosen by the method's ``text_encoder`` option:

* ``clip``: a CLIP model (``CLIPModel`` with its tokenizer) read from a local directory,
  ``method.clip_path`` or the model's ``clip_path`` option (for LLaVA-1.5 the
  ``clip-vit-large-patch14-336`` folder its vision tower comes from). The image feature is
  CLIP's projected image embedding of the model's own processed image, the text feature
  CLIP's projected text embedding of the instruction, as in the published code.
* ``embedding-mean``: for models without a CLIP text encoder, in particular the built-in tiny
  models. The image feature is the model's own (frozen, pretrained) vision encoder's pooled
  output (the adapter's ``pooled_image_features``); the
  text feature is the mean of the language model's (frozen) input embeddings over the
  instruction's tokens. A randomly initialised CLIP text encoder would give features that mean
  nothing; the tiny model's embeddings were trained by its captioning pretraining and stay
  frozen under LoRA, so their mean is a fixed bag-of-words feature of the instruction, which
  is what the anchors need (instructions of one task resemble each other).

The instruction is the first user message without the image placeholder (the published code
decodes the prompt and keeps the text between the image line and ``ASSISTANT``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from cvit_bench.harness.errors import DataError, UsageError
from cvit_bench.harness.types import Sample


def resolve_clip_path(ctx: Any, configured: str | None) -> str | None:
    """``method.clip_path``, else a ``clip_path`` option of the model, else ``None``."""
    if configured:
        return configured
    return getattr(getattr(ctx.model, "config", None), "clip_path", None) or None


class TaskFeatures:
    """Computes ``(image_features, text_features)`` for samples; rows of samples without an
    image are NaN in ``image_features``."""

    def __init__(self, ctx: Any, kind: str, clip_path: str | None, batch_size: int = 32) -> None:
        self.adapter = ctx.model
        self.batch_size = batch_size
        self.clip: Any = None
        self.clip_tokenizer: Any = None
        path = resolve_clip_path(ctx, clip_path)
        builtin = _describe(ctx.model).get("source") == "built-in"
        if kind == "auto":
            if path:
                kind = "clip"
            elif builtin:
                kind = "embedding-mean"
            else:
                raise UsageError(
                    "hide needs a CLIP text encoder for the task anchors: set "
                    "method.clip_path to a local CLIP directory (for LLaVA-1.5: "
                    "clip-vit-large-patch14-336), or method.text_encoder=embedding-mean"
                )
        if kind == "clip":
            if not path:
                raise UsageError("method.text_encoder=clip needs method.clip_path")
            if "llava-internals" not in getattr(ctx.model, "features", ()):
                raise UsageError(
                    f"hide: text_encoder=clip feeds CLIP the model's own processed images, which "
                    f"only LLaVA-family models give in CLIP's layout; model "
                    f"{getattr(ctx.model, 'name', '?')!r} needs method.text_encoder=embedding-mean"
                )
            self.clip, self.clip_tokenizer = load_clip(path)
        self.kind = kind

    @torch.no_grad()
    def __call__(self, samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        images, texts = [], []
        for start in range(0, len(samples), self.batch_size):
            chunk = samples[start : start + self.batch_size]
            images.append(self.image_features(chunk))
            texts.append(self.text_features(chunk))
        return torch.cat(images), torch.cat(texts)

    def image_features(self, samples: Sequence[Sample]) -> torch.Tensor:
        with_image = [i for i, s in enumerate(samples) if s.image is not None]
        dim = None
        feats = None
        if with_image:
            paths = [samples[i].image for i in with_image]
            if self.clip is not None:
                pixels = torch.stack([self.adapter.pixel_values(p) for p in paths])
                param = next(self.clip.parameters())
                out = self.clip.get_image_features(
                    pixel_values=pixels.to(param.device, param.dtype)
                )
                feats = _as_tensor(out).float().cpu()
            else:
                feats = self.adapter.pooled_image_features(paths)
            dim = feats.shape[1]
        if dim is None:
            dim = 1
        result = torch.full((len(samples), dim), float("nan"))
        if feats is not None:
            result[with_image] = feats
        return result

    def text_features(self, samples: Sequence[Sample]) -> torch.Tensor:
        prompts = [instruction(s) for s in samples]
        if self.clip is not None:
            param = next(self.clip.parameters())
            enc = self.clip_tokenizer(
                prompts, padding=True, truncation=True, max_length=77, return_tensors="pt"
            )
            out = self.clip.get_text_features(**{k: v.to(param.device) for k, v in enc.items()})
            return _as_tensor(out).float().cpu()
        embed = self.adapter.model.get_input_embeddings()
        rows = []
        for prompt in prompts:
            ids = self.adapter.tokenizer(prompt, add_special_tokens=False)["input_ids"] or [
                self.adapter.tokenizer.pad_token_id
            ]
            tensor = torch.tensor(ids, device=embed.weight.device)
            rows.append(embed(tensor).float().mean(0).cpu())
        return torch.stack(rows)


def _describe(model: Any) -> dict[str, Any]:
    describe = getattr(model, "describe", None)
    return describe() if describe else {}


def instruction(sample: Sample) -> str:
    return sample.prompt.replace("<image>", "").strip()


def _as_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    for key in ("image_embeds", "text_embeds", "pooler_output"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    return out[0]


def load_clip(path: str) -> tuple[Any, Any]:
    """A local CLIP model and tokenizer; never downloads."""
    from pathlib import Path

    from transformers import AutoTokenizer, CLIPModel

    if not (Path(path) / "config.json").exists():
        raise DataError(
            f"{path}: no CLIP model here (config.json missing); download "
            "openai/clip-vit-large-patch14-336 to a local folder and pass it as method.clip_path"
        )
    model = CLIPModel.from_pretrained(path, local_files_only=True).eval()
    if __import__("torch").cuda.is_available():
        model = model.cuda()
    for param in model.parameters():
        param.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def similarities(
    image: torch.Tensor,
    text: torch.Tensor,
    image_anchors: torch.Tensor,
    text_anchors: torch.Tensor,
) -> torch.Tensor:
    """``(batch, tasks)``: the mean of the image and text cosine similarities to each task's
    anchors; a sample without an image uses its text similarity alone."""
    cos = torch.nn.functional.cosine_similarity
    text_sim = cos(text[:, None, :], text_anchors[None, :, :], dim=-1)
    if image.shape[1] != image_anchors.shape[1]:  # a batch with no image at all
        return text_sim
    image_sim = cos(image[:, None, :], image_anchors[None, :, :], dim=-1)
    both = (image_sim + text_sim) / 2
    missing = torch.isnan(image[:, 0])
    return torch.where(missing[:, None], text_sim, both)


def expert_weights(sim: torch.Tensor, temperature: float) -> torch.Tensor:
    """HiDe-LLaVA's mixing weights: ``softmax(similarity / temperature)`` per sample."""
    return torch.softmax(sim / temperature, dim=-1)
