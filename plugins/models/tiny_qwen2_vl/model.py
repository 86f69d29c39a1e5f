"""``tiny-qwen2-vl``: a Qwen2-VL-architecture model small enough to train on a CPU in seconds.

``Qwen2VLForConditionalGeneration`` with its vision transformer (2-D rotary patches, the
2x2 patch merger) and a Qwen2 language model with M-RoPE, all with random weights drawn from
``seed``; a byte-level BPE tokenizer trained on the benchmark's own text with Qwen's special
tokens (ChatML and vision markers); Qwen2-VL's dynamic-resolution image processing with
``patch_size`` 4 and merge size 2, so a 32x32 image becomes 8x8 patches and 16 image tokens.
The captioning pretraining and its cache are tiny-llava's (``tiny_common``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvit_bench.harness.config import config_field
from cvit_bench.plugins.models.qwen2_vl_common import (
    END_OF_TEXT,
    IM_END,
    IM_START,
    IMAGE_PAD,
    VIDEO_PAD,
    VISION_END,
    VISION_START,
    Qwen2VLFamilyAdapter,
    QwenChatTemplate,
)
from cvit_bench.plugins.models.tiny_common import TinyModelConfig, TinyModelMixin
from cvit_bench.plugins.models.tiny_llava.tokenizer import SpecialTokens

FORMAT_VERSION = 1
"""Bump when the architecture or pretraining code changes what a cache entry holds."""

QWEN_SPECIALS = SpecialTokens(
    pad=END_OF_TEXT,
    eos=IM_END,
    extra=(IM_START, VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD),
)


@dataclass
class TinyQwen2VLConfig(TinyModelConfig):
    patch_size: int = config_field(
        4, help="vision patch side; every merge_size x merge_size patches make one image token"
    )
    merge_size: int = config_field(2, help="patches merged per side into one image token")
    min_pixels: int = config_field(
        32 * 32, help="smallest image area in pixels after resizing (aspect ratio kept)"
    )
    max_pixels: int = config_field(
        32 * 32, help="largest image area in pixels after resizing (bounds the image tokens)"
    )
    system_prompt: str = config_field(
        "", help="system turn of the ChatML template (the tiny model leaves it out by default)"
    )


class TinyQwen2VL(TinyModelMixin, Qwen2VLFamilyAdapter):
    name = "tiny-qwen2-vl"
    config_class = TinyQwen2VLConfig
    format_version = FORMAT_VERSION
    specials = QWEN_SPECIALS

    def __init__(self, config: TinyQwen2VLConfig | None = None) -> None:
        super().__init__(config or TinyQwen2VLConfig())
        self._init_tiny()

    def exchange_text(self, question: str, answer: str) -> str:
        return f"{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n{answer}{IM_END}"

    def template_texts(self) -> list[str]:
        c = self.config
        return [f"{IM_START}system\n{c.system_prompt}{IM_END}\n"] if c.system_prompt else []

    def model_config(self) -> Any:
        from transformers import Qwen2VLConfig

        c = self.config
        tok = self.tokenizer
        head_dim = c.text_hidden // c.text_heads
        # M-RoPE splits each head's rotary frequencies over (time, height, width); Qwen2-VL's
        # [16, 24, 24] of 64 in the same proportions
        quarter = head_dim // 2 // 4
        mrope = [quarter, (head_dim // 2 - quarter) // 2]
        mrope.append(head_dim // 2 - sum(mrope))
        ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS.vocabulary()}
        return Qwen2VLConfig(
            text_config={
                "vocab_size": len(tok),
                "hidden_size": c.text_hidden,
                "intermediate_size": c.text_intermediate,
                "num_hidden_layers": c.text_layers,
                "num_attention_heads": c.text_heads,
                "num_key_value_heads": c.text_heads,
                "max_position_embeddings": 1024,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": 10000.0,
                    "mrope_section": mrope,
                },
                "bos_token_id": None,
                "eos_token_id": ids[IM_END],
                "pad_token_id": ids[END_OF_TEXT],
                "tie_word_embeddings": False,
            },
            vision_config={
                "depth": c.vision_layers,
                "embed_dim": c.vision_hidden,
                "hidden_size": c.text_hidden,
                "num_heads": c.vision_heads,
                "mlp_ratio": 4,
                "patch_size": c.patch_size,
                "spatial_merge_size": c.merge_size,
                "temporal_patch_size": 2,
            },
            image_token_id=ids[IMAGE_PAD],
            video_token_id=ids[VIDEO_PAD],
            vision_start_token_id=ids[VISION_START],
            vision_end_token_id=ids[VISION_END],
            tie_word_embeddings=False,
        )

    def build_random(self) -> None:
        """The model with seeded random weights (tokenizer must be set)."""
        import torch
        from transformers import Qwen2VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        c = self.config
        self.image_processor = Qwen2VLImageProcessorPil(
            min_pixels=c.min_pixels,
            max_pixels=c.max_pixels,
            patch_size=c.patch_size,
            merge_size=c.merge_size,
            temporal_patch_size=2,
        )
        self._pixel_cache.clear()
        self.template = QwenChatTemplate(system=c.system_prompt)
        torch.manual_seed(c.seed)
        config = self.model_config()
        config._attn_implementation = c.attn_implementation
        self.model = Qwen2VLForConditionalGeneration(config).float()
        self.model.generation_config.do_sample = False
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
