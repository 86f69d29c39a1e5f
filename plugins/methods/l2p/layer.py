"""The prompt pool and the hooks that put the chosen prompts in front of the input.

The pool is a submodule of the LLaVA model (so the engine, DeepSpeed and ``named_parameters``
see it). Two forward hooks do the rest, for training and for cached generation alike:

* on the LLaVA model (pre-hook): when a forward starts a sequence (no cache yet) and carries
  images, the query of each sample is computed (no gradient) from the frozen vision tower (the
  feature layer LLaVA uses, CLS dropped as LLaVA drops it, mean over patches); the ``top_k``
  keys of highest cosine similarity choose the prompts. ``generate`` encodes the images before
  its first forward (the forward sees ``mm_encoder_outputs``, not ``pixel_values``), so for
  generation the selection is made beforehand from the batch (``pin``) and kept for the whole
  call;
* on the language model (pre-hook): the chosen prompts' embeddings are put in front of
  ``inputs_embeds`` on the first call; on that call and every decoding step after it the
  attention mask gains ``P`` leading columns and explicit position ids shift by ``P`` (the
  prompts take positions ``0..P-1``); a post-hook drops the ``P`` prompt positions from the
  output, so logits and labels keep their length.

A sample without an image gets no query: its prompt slots are masked out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class PromptPool(nn.Module):
    """``pool_size`` prompts of ``length`` embeddings each, with one key per prompt."""

    def __init__(
        self, pool_size: int, length: int, embed_dim: int, key_dim: int, embed_std: float
    ) -> None:
        super().__init__()
        self.keys = nn.Parameter(torch.empty(pool_size, key_dim).uniform_(-1.0, 1.0))
        self.prompts = nn.Parameter(torch.randn(pool_size, length, embed_dim) * embed_std)

    def similarity(self, query: torch.Tensor) -> torch.Tensor:
        """``[B, pool_size]`` cosine similarity of each query to each key."""
        return F.normalize(query.float(), dim=-1) @ F.normalize(self.keys.float(), dim=-1).t()


def cache_is_empty(cache: Any) -> bool:
    return cache is None or cache.get_seq_length() == 0


class PromptInjector:
    """Installs the hooks on a LLaVA model; holds the current batch's selection."""

    def __init__(self, llava: nn.Module, pool: PromptPool, top_k: int) -> None:
        self.llava = llava
        self.pool = pool
        self.top_k = top_k
        self.prefix: torch.Tensor | None = None  # [B, P, D] prompts of the current sequence
        self.keep: torch.Tensor | None = None  # [B] rows whose prompts count
        self.match: torch.Tensor | None = None  # [rows with image, top_k] selected similarities
        self.selected: torch.Tensor | None = None  # [B, top_k] prompt indices (-1: none)
        self._strip = 0
        self.pinned = False
        language_model = llava.model.language_model
        self.handles = [
            llava.register_forward_pre_hook(self._select, with_kwargs=True),
            language_model.register_forward_pre_hook(self._prepend, with_kwargs=True),
            language_model.register_forward_hook(self._drop),
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    # -- the query -----------------------------------------------------------------------
    def query(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[n_images, key_dim]``: the frozen vision tower's mean patch feature."""
        config = self.llava.config
        tower = self.llava.model.vision_tower
        with torch.no_grad():
            out = tower(pixel_values.to(next(tower.parameters()).dtype), output_hidden_states=True)
            layers = config.vision_feature_layer
            layers = [layers] if isinstance(layers, int) else list(layers)
            feats = [out.hidden_states[i] for i in layers]
            if config.vision_feature_select_strategy == "default":
                feats = [f[:, 1:] for f in feats]
            return torch.cat(feats, dim=-1).mean(dim=1).float()

    def pin(self, pixel_values: torch.Tensor | None, input_ids: torch.Tensor) -> None:
        """Choose the prompts of a batch now and keep them until ``unpin`` (generation)."""
        self.pinned = False
        self.choose(pixel_values, input_ids)
        self.pinned = True

    def unpin(self) -> None:
        self.pinned = False
        self.prefix = self.keep = self.match = self.selected = None

    # -- hooks ---------------------------------------------------------------------------
    def _select(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        if self.pinned or not cache_is_empty(kwargs.get("past_key_values")):
            return None  # chosen before generation, or a decoding step: prompts stay
        if kwargs.get("pixel_values") is None and kwargs.get("mm_encoder_outputs"):
            raise RuntimeError(
                "l2p: images arrive pre-encoded (generate); generate inside the method's "
                "inference(ctx, batch) context, which chooses the prompts from the batch"
            )
        self.choose(kwargs.get("pixel_values"), kwargs.get("input_ids"))
        return None

    def choose(self, pixel_values: torch.Tensor | None, input_ids: torch.Tensor | None) -> None:
        self.prefix = self.keep = self.match = self.selected = None
        if pixel_values is None or input_ids is None:
            return
        device = self.pool.keys.device
        pixel_values, input_ids = pixel_values.to(device), input_ids.to(device)
        batch = input_ids.shape[0]
        has_image = (input_ids == self.llava.config.image_token_id).any(dim=1)
        if int(has_image.sum()) != pixel_values.shape[0]:
            raise ValueError(
                f"l2p: {int(has_image.sum())} samples hold image tokens but "
                f"{pixel_values.shape[0]} images were given"
            )
        sim = self.pool.similarity(self.query(pixel_values))  # [n_images, M]
        k = min(self.top_k, sim.shape[1])
        top, idx = sim.topk(k, dim=1)
        self.match = top
        rows = torch.full((batch, k), -1, dtype=torch.long, device=idx.device)
        rows[has_image.to(idx.device)] = idx
        self.selected = rows
        prompts = self.pool.prompts[rows.clamp(min=0)]  # [B, k, L, D]
        self.prefix = prompts.flatten(1, 2)
        self.keep = has_image

    def _prepend(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> Any:
        if self.prefix is None:
            return None
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            raise ValueError("l2p: the language model was called without inputs_embeds")
        width = self.prefix.shape[1]
        batch = embeds.shape[0]
        first = cache_is_empty(kwargs.get("past_key_values"))
        kwargs = dict(kwargs)
        if first:
            kwargs["inputs_embeds"] = torch.cat([self.prefix.to(embeds.dtype), embeds], dim=1)
            self._strip = width
        mask = kwargs.get("attention_mask")
        if mask is not None:
            if mask.dim() != 2:
                raise ValueError("l2p needs a 2-D attention mask")
            lead = self.keep.to(device=mask.device, dtype=mask.dtype)[:, None].expand(batch, width)
            kwargs["attention_mask"] = torch.cat([lead, mask], dim=1)
        elif first:
            seq = embeds.shape[1]
            ones = torch.ones(batch, seq, dtype=torch.long, device=embeds.device)
            lead = self.keep.to(device=embeds.device, dtype=torch.long)[:, None].expand(
                batch, width
            )
            kwargs["attention_mask"] = torch.cat([lead, ones], dim=1)
        positions = kwargs.get("position_ids")
        if positions is not None:
            shifted = positions + width
            if first:
                lead_pos = torch.arange(width, device=positions.device, dtype=positions.dtype)
                lead_pos = lead_pos.expand(*positions.shape[:-1], width)
                shifted = torch.cat([lead_pos, shifted], dim=-1)
            kwargs["position_ids"] = shifted
        return args, kwargs

    def _drop(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if self._strip:
            width, self._strip = self._strip, 0
            output.last_hidden_state = output.last_hidden_state[:, width:]
        return output
