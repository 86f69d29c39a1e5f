"""``tiny-llava``: a LLaVA-1.5-architecture model small enough to train on a CPU in seconds.

``LlavaForConditionalGeneration`` with a CLIP vision tower, the two-layer GELU projector and a
Llama language model, all with random weights drawn from ``seed``, a byte-level BPE tokenizer
trained on the benchmark's own text, and LLaVA-1.5's image processing (pad to square, resize,
normalise). A short captioning pretraining stage (see ``pretrain.py``) makes it a pretrained
starting point like the real ones; the result is cached under
``<cache_dir>/tiny-llava/<key>/``, keyed by the configuration and the tokenizer (see
``cvit_bench.plugins.models.tiny_common``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cvit_bench.harness.config import config_field
from cvit_bench.plugins.models.llava_common import IMAGE_TOKEN, ChatTemplate, LlavaFamilyAdapter
from cvit_bench.plugins.models.tiny_common import TinyModelConfig, TinyModelMixin

FORMAT_VERSION = 1
"""Bump when the architecture or pretraining code changes what a cache entry holds."""


@dataclass
class TinyLlavaConfig(TinyModelConfig):
    patch_size: int = config_field(
        8, help="vision patch side; (image_size/patch_size)^2 image tokens"
    )
    system_prompt: str = config_field(
        "",
        help="system line of the Vicuna v1 template (LLaVA's is long; the tiny model drops it by default)",
    )


def _exchange(question: str, answer: str) -> str:
    """One exchange as the chat template lays it out (answers follow a space)."""
    return f"USER: {question} ASSISTANT: {answer}"


class TinyLlava(TinyModelMixin, LlavaFamilyAdapter):
    name = "tiny-llava"
    config_class = TinyLlavaConfig
    format_version = FORMAT_VERSION

    def __init__(self, config: TinyLlavaConfig | None = None) -> None:
        super().__init__(config or TinyLlavaConfig())
        self._init_tiny()

    def exchange_text(self, question: str, answer: str) -> str:
        return _exchange(question, answer)

    def template_texts(self) -> list[str]:
        return [self.config.system_prompt, "USER: ASSISTANT:"]

    def model_config(self) -> Any:
        from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

        c = self.config
        tok = self.tokenizer
        vision = CLIPVisionConfig(
            hidden_size=c.vision_hidden,
            intermediate_size=4 * c.vision_hidden,
            num_hidden_layers=c.vision_layers,
            num_attention_heads=c.vision_heads,
            image_size=c.image_size,
            patch_size=c.patch_size,
            projection_dim=c.vision_hidden,
        )
        text = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=c.text_hidden,
            intermediate_size=c.text_intermediate,
            num_hidden_layers=c.text_layers,
            num_attention_heads=c.text_heads,
            num_key_value_heads=c.text_heads,
            max_position_embeddings=1024,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=False,
        )
        return LlavaConfig(
            vision_config=vision,
            text_config=text,
            image_token_id=tok.convert_tokens_to_ids(IMAGE_TOKEN),
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            image_seq_length=(c.image_size // c.patch_size) ** 2,
            projector_hidden_act="gelu",
        )

    def build_random(self) -> None:
        """The model with seeded random weights (tokenizer must be set)."""
        import torch
        from transformers import LlavaForConditionalGeneration
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        c = self.config
        side = {"height": c.image_size, "width": c.image_size}
        self.image_processor = LlavaImageProcessorPil(
            do_pad=True, size={"shortest_edge": c.image_size}, crop_size=side
        )
        self.template = ChatTemplate(system=c.system_prompt)
        self.image_seq_length = (c.image_size // c.patch_size) ** 2
        torch.manual_seed(c.seed)
        config = self.model_config()
        config._attn_implementation = c.attn_implementation
        self.model = LlavaForConditionalGeneration(config).float()
        self.model.generation_config.do_sample = False
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
