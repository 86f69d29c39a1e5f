"""What every LLaVA-architecture model adapter shares: the Vicuna chat template and images.

The rules here decide what a published prompt means, so they follow LLaVA-1.5 exactly:

* Vicuna v1 conversation: ``"{system} USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: ..."``;
  the image placeholder goes before the first question and is expanded to one ``<image>`` token
  per image feature (``image_seq_length``), which ``LlavaForConditionalGeneration`` replaces by
  the projected features.
* Images are padded to a square with the CLIP mean colour, then resized and centre-cropped
  (``LlavaImageProcessorPil(do_pad=True)``).
* Loss masking and batched greedy generation follow ``chat_adapter`` (answers and the EOS
  after each are supervised; generation is cut at the first EOS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cvit_bench.harness.types import Sample
from cvit_bench.plugins.models.chat_adapter import (  # noqa: F401 - re-exported
    IGNORE_INDEX,
    IMAGE_TOKEN,
    LLAMA_LORA_TARGETS,
    ChatAdapterBase,
    pad_sequences,
    template_questions,
)

VICUNA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


@dataclass(frozen=True)
class ChatTemplate:
    """LLaVA's ``conv_vicuna_v1`` (``SeparatorStyle.TWO``): roles USER/ASSISTANT, separators
    ``" "`` after a user turn and ``"</s>"`` after an assistant turn (added as the EOS id)."""

    system: str = VICUNA_V1_SYSTEM
    user: str = "USER"
    assistant: str = "ASSISTANT"

    def segments(self, sample: Sample, with_answers: bool) -> list[tuple[str, str | None]]:
        """``[(prompt_text, answer_text)]`` per turn; the prompt text of turn ``i`` is everything
        between the previous EOS and the answer, ending in ``"ASSISTANT:"``; answers start with
        a space. ``with_answers=False`` gives the single generation prompt (last answer None)."""
        out: list[tuple[str, str | None]] = []
        turns = template_questions(sample, with_answers, f"{IMAGE_TOKEN}\n")
        for i, (turn, question) in enumerate(turns):
            head = f"{self.system} " if (i == 0 and self.system) else ""
            prompt = f"{head}{self.user}: {question} {self.assistant}:"
            out.append((prompt, f" {turn.gpt}" if with_answers else None))
        return out

    def render(self, sample: Sample) -> str:
        """The generation prompt as text (recorded with each prediction)."""
        return self.segments(sample, with_answers=False)[0][0]


class LlavaFamilyAdapter(ChatAdapterBase):
    """Base of the LLaVA-family model adapters; subclasses fill ``build``.

    After ``build`` these attributes are set: ``model`` (an ``LlavaForConditionalGeneration``,
    possibly wrapped by a method), ``tokenizer``, ``image_processor``, ``template`` and
    ``image_seq_length``. Batching, loss masking and generation are
    :class:`~cvit_bench.plugins.models.chat_adapter.ChatAdapterBase`'s.
    """

    name = "llava-family"
    features = frozenset({"lora", "image-embedding", "llava-internals"})
    projector_module = "multi_modal_projector"
    vision_module = "vision_tower"
    parameter_parts = ("vision_tower", "multi_modal_projector", "language_model")
    input_keys = ("input_ids", "attention_mask", "labels", "pixel_values")

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.template = ChatTemplate()
        self.image_seq_length = 0

    def image_text(self, sample: Sample) -> str:
        return IMAGE_TOKEN * self.image_seq_length

    def process_image(self, image: Any) -> Any:
        return self.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def image_inputs(self, samples: Sequence[Sample]) -> dict[str, Any]:
        import torch

        images = [self.pixel_values(s.image) for s in samples if s.image is not None]
        return {"pixel_values": torch.stack(images)} if images else {}

    def pooled_image_features(self, paths: Sequence[str]) -> Any:
        """``[n, d]``: the vision tower's pooled output for each image (frozen features)."""
        import torch

        tower = self.submodule(self.vision_module)
        param = next(tower.parameters())
        pixels = torch.stack([self.pixel_values(p) for p in paths])
        with torch.no_grad():
            out = tower(pixel_values=pixels.to(param.device, param.dtype))
        return out.pooler_output.float().cpu()
