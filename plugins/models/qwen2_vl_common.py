"""What every Qwen2-VL model adapter shares: Qwen's chat template and dynamic-resolution images.

* The ChatML conversation Qwen2-VL-Instruct was trained with::

      <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n
      <|vision_start|><|image_pad|>...<|vision_end|>{question}<|im_end|>\\n
      <|im_start|>assistant\\n{answer}<|im_end|>\\n<|im_start|>user\\n...

  (one line here, wrapped for reading). The image goes before the first question; its
  ``<|image_pad|>`` run has one token per merged patch group, ``t*h*w / merge_size^2`` for the
  image's ``image_grid_thw`` row, which ``Qwen2VLForConditionalGeneration`` replaces by the
  vision encoder's output. Training supervises each answer and the ``<|im_end|>`` after it.
* Images keep their aspect ratio: ``Qwen2VLImageProcessorPil`` resizes each to a multiple of
  ``patch_size * merge_size`` with a pixel count between ``min_pixels`` and ``max_pixels`` and
  cuts it into flattened patches; a batch concatenates every image's patches and lists their
  grids in ``image_grid_thw``.
* The model's 3-D rotary positions (M-RoPE) need ``mm_token_type_ids`` (1 on image tokens) next
  to the ids; the collate functions add it.
* Batching, loss masking and greedy generation are ``chat_adapter``'s; generation stops at
  ``<|im_end|>`` or ``<|endoftext|>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cvit_bench.harness.types import Sample
from cvit_bench.plugins.models.chat_adapter import (
    IMAGE_TOKEN,
    ChatAdapterBase,
    template_questions,
)

QWEN_SYSTEM = "You are a helpful assistant."
IM_START, IM_END, END_OF_TEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


@dataclass(frozen=True)
class QwenChatTemplate:
    """Qwen2-VL's ChatML template; ``system=""`` leaves the system turn out."""

    system: str = QWEN_SYSTEM

    def segments(self, sample: Sample, with_answers: bool) -> list[tuple[str, str | None]]:
        """``[(prompt_text, answer_text)]`` per turn. The prompt text of turn ``i`` is
        everything between the previous ``<|im_end|>`` (appended as an id) and the answer,
        ending in ``"<|im_start|>assistant\\n"``. ``with_answers=False`` gives the single
        generation prompt (answer None)."""
        out: list[tuple[str, str | None]] = []
        for i, (turn, question) in enumerate(template_questions(sample, with_answers, IMAGE_TOKEN)):
            if i == 0:
                head = f"{IM_START}system\n{self.system}{IM_END}\n" if self.system else ""
            else:
                head = "\n"
            prompt = f"{head}{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n"
            out.append((prompt, turn.gpt if with_answers else None))
        return out

    def render(self, sample: Sample) -> str:
        """The generation prompt as text (recorded with each prediction)."""
        return self.segments(sample, with_answers=False)[0][0]


class Qwen2VLFamilyAdapter(ChatAdapterBase):
    """Base of the Qwen2-VL model adapters; subclasses fill ``build`` (``model``,
    ``tokenizer``, ``image_processor`` and ``template``)."""

    name = "qwen2-vl-family"
    features = frozenset({"lora", "image-embedding"})
    projector_module = "merger"
    vision_module = "visual"
    parameter_parts = ("visual", "merger", "language_model")
    input_keys = (
        "input_ids",
        "attention_mask",
        "labels",
        "pixel_values",
        "image_grid_thw",
        "mm_token_type_ids",
    )
    add_bos = False

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.template = QwenChatTemplate()

    def _id(self, token: str) -> int:
        return self.tokenizer.convert_tokens_to_ids(token)

    @property
    def end_of_answer_id(self) -> int:
        return self._id(IM_END)

    @property
    def stop_ids(self) -> list[int]:
        return [self._id(IM_END), self._id(END_OF_TEXT)]

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)

    # -- images ----------------------------------------------------------------------------
    def process_image(self, image: Any) -> Any:
        """``(patches [n, C*T*p*p], grid [3])`` of one image."""
        out = self.image_processor(images=image, return_tensors="pt")
        return out["pixel_values"], out["image_grid_thw"][0]

    def image_tokens(self, path: str) -> int:
        """How many ``<|image_pad|>`` tokens the image at ``path`` takes."""
        _, grid = self.pixel_values(path)
        return int(grid.prod()) // self.merge_size**2

    def image_text(self, sample: Sample) -> str:
        n = self.image_tokens(sample.image) if sample.image is not None else 0
        return f"{VISION_START}{IMAGE_PAD * n}{VISION_END}"

    def image_inputs(self, samples: Sequence[Sample]) -> dict[str, Any]:
        import torch

        images = [self.pixel_values(s.image) for s in samples if s.image is not None]
        if not images:
            return {}
        return {
            "pixel_values": torch.cat([patches for patches, _ in images]),
            "image_grid_thw": torch.stack([grid for _, grid in images]),
        }

    def token_inputs(self, input_ids: Any) -> dict[str, Any]:
        return {"mm_token_type_ids": (input_ids == self._id(IMAGE_PAD)).int()}

    def pooled_image_features(self, paths: Sequence[str]) -> Any:
        """``[n, d]``: the vision encoder's output (before the merger) averaged over each
        image's patches (frozen features)."""
        import torch

        visual = self.submodule(self.vision_module)
        param = next(visual.parameters())
        images = [self.pixel_values(p) for p in paths]
        pixels = torch.cat([patches for patches, _ in images]).to(param.device, param.dtype)
        grids = torch.stack([grid for _, grid in images]).to(param.device)
        with torch.no_grad():
            hidden = visual(pixels, grid_thw=grids).last_hidden_state
        sizes = grids.prod(-1).tolist()
        return torch.stack([h.float().mean(0) for h in torch.split(hidden, sizes)]).cpu()
