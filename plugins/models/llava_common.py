"""What every LLaVA-architecture model adapter shares: chat template, batching, generation.

The rules here decide what a published prompt means, so they follow LLaVA-1.5 exactly:

* Vicuna v1 conversation: ``"{system} USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: ..."``;
  the image placeholder goes before the first question and is expanded to one ``<image>`` token
  per image feature (``image_seq_length``), which ``LlavaForConditionalGeneration`` replaces by
  the projected features.
* Images are padded to a square with the CLIP mean colour, then resized and centre-cropped
  (``LlavaImageProcessorPil(do_pad=True)``).
* Training loss covers answer tokens and the end-of-sequence token after each answer only. The
  prompt's tokens are checked to be an exact prefix of prompt + answer; where a tokenizer merges
  across the boundary the answer is tokenised on its own instead. The EOS id is appended as an
  id, never as text.
* Generation is greedy over left-padded batches; each answer is cut at the first EOS and decoded
  with special tokens kept, so a stray special token costs exact match as it should.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cvit_bench.harness.types import Sample, Turn

IMAGE_TOKEN = "<image>"
VICUNA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
IGNORE_INDEX = -100
LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


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
        turns = sample.conversation()
        if not with_answers:
            turns = turns[:1]
        out: list[tuple[str, str | None]] = []
        for i, turn in enumerate(turns):
            question = turn.human.replace(IMAGE_TOKEN, "").strip()
            if i == 0 and sample.image is not None:
                question = f"{IMAGE_TOKEN}\n{question}"
            head = f"{self.system} " if (i == 0 and self.system) else ""
            prompt = f"{head}{self.user}: {question} {self.assistant}:"
            out.append((prompt, f" {turn.gpt}" if with_answers else None))
        return out

    def render(self, sample: Sample) -> str:
        """The generation prompt as text (recorded with each prediction)."""
        return self.segments(sample, with_answers=False)[0][0]


def pad_sequences(rows: Sequence[Sequence[int]], value: int, left: bool) -> list[list[int]]:
    width = max(len(r) for r in rows)
    if left:
        return [[value] * (width - len(r)) + list(r) for r in rows]
    return [list(r) + [value] * (width - len(r)) for r in rows]


class LlavaFamilyAdapter:
    """Base of the LLaVA-family model adapters; subclasses fill ``build``.

    After ``build`` these attributes are set: ``model`` (an ``LlavaForConditionalGeneration``,
    possibly wrapped by a method), ``tokenizer``, ``image_processor``, ``template`` and
    ``image_seq_length``. The DeepSpeed engine uses ``collate_train``, ``collate_eval``,
    ``forward``, ``generate`` and ``is_projector_param``.
    """

    name = "llava-family"
    config_class: type = type(None)

    def __init__(self, config: Any = None) -> None:
        self.config = config
        self.model: Any = None
        self.tokenizer: Any = None
        self.image_processor: Any = None
        self.template = ChatTemplate()
        self.image_seq_length = 0
        self._pixel_cache: dict[str, Any] = {}

    # -- protocol ------------------------------------------------------------------------
    def create_engine(self, ctx: Any) -> Any:
        from cvit_bench.harness.engine import DeepSpeedEngine

        return DeepSpeedEngine(self)

    def lora_targets(self) -> list[str]:
        return list(LLAMA_LORA_TARGETS)

    def is_projector_param(self, name: str) -> bool:
        return "multi_modal_projector" in name

    # -- images --------------------------------------------------------------------------
    def pixel_values(self, path: str) -> Any:
        """The processed image tensor for ``path`` (cached: tasks are evaluated many times)."""
        cached = self._pixel_cache.get(path)
        if cached is None:
            from PIL import Image

            from cvit_bench.harness.errors import DataError

            try:
                with Image.open(path) as img:
                    rgb = img.convert("RGB")
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read image {path}: {exc}") from exc
            cached = self.image_processor(images=rgb, return_tensors="pt")["pixel_values"][0]
            self._pixel_cache[path] = cached
        return cached

    # -- tokenisation --------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        text = text.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.image_seq_length)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _prefix(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and getattr(self, "add_bos", True) else []

    def _encode_segments(
        self, segments: Sequence[tuple[str, str | None]]
    ) -> tuple[list[int], list[int]]:
        """Ids and labels of ``(prompt, answer)`` segments; a last answer of ``None`` leaves
        the ids ending in that turn's prompt, ready for generation."""
        eos = self.tokenizer.eos_token_id
        ids = self._prefix()
        labels = [IGNORE_INDEX] * len(ids)
        for prompt, answer in segments:
            prompt_ids = self._encode(prompt)
            if answer is None:
                ids += prompt_ids
                labels += [IGNORE_INDEX] * len(prompt_ids)
                break
            full_ids = self._encode(prompt + answer)
            if full_ids[: len(prompt_ids)] == prompt_ids:
                answer_ids = full_ids[len(prompt_ids) :]
            else:  # the tokenizer merged across the boundary: keep the prompt as inference sees it
                answer_ids = self._encode(answer)
            ids += prompt_ids + answer_ids + [eos]
            labels += [IGNORE_INDEX] * len(prompt_ids) + answer_ids + [eos]
        return ids, labels

    def encode_train(self, sample: Sample, max_length: int) -> tuple[list[int], list[int]]:
        """Token ids and labels (``IGNORE_INDEX`` outside answers) for one training sample."""
        ids, labels = self._encode_segments(self.template.segments(sample, with_answers=True))
        return ids[:max_length], labels[:max_length]

    def encode_prompt(self, sample: Sample) -> list[int]:
        return self._prefix() + self._encode(self.template.render(sample))

    # -- chat ----------------------------------------------------------------------------
    def chat_segments(
        self, history: Sequence[Turn], question: str, image: str | None
    ) -> list[tuple[str, str | None]]:
        """The conversation laid out as training lays out a multi-turn sample: every earlier
        exchange with its answer (then EOS), and ``question``'s prompt last (answer ``None``)."""
        turns = (*history, Turn(question, ""))
        conversation = Sample(
            id="chat", task="chat", prompt=turns[0].human, image=image, turns=turns
        )
        segments = self.template.segments(conversation, with_answers=True)
        return [*segments[:-1], (segments[-1][0], None)]

    def render_chat(self, history: Sequence[Turn], question: str, image: str | None) -> str:
        """The generation prompt of ``question`` after ``history`` as text; the EOS after each
        earlier answer is shown as the tokenizer spells it."""
        eos = self.tokenizer.eos_token or ""
        return "".join(
            prompt + (f"{answer}{eos}" if answer is not None else "")
            for prompt, answer in self.chat_segments(history, question, image)
        )

    def collate_chat(
        self, history: Sequence[Turn], question: str, image: str | None
    ) -> dict[str, Any]:
        """A batch of one conversation for ``generate``: the ids of ``chat_segments``.
        ``batch["samples"]`` holds ``question`` on ``image`` as an evaluation sample, which is
        what a method's inference routing looks at. Without history the ids equal
        ``collate_eval`` of that sample."""
        import torch

        ids, _ = self._encode_segments(self.chat_segments(history, question, image))
        sample = Sample(id="chat", task="chat", prompt=question, image=image)
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([ids]),
            "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            "samples": [sample],
        }
        pixels = self._images([sample])
        if pixels is not None:
            batch["pixel_values"] = pixels
        return batch

    def _images(self, samples: Sequence[Sample]) -> Any:
        import torch

        images = [self.pixel_values(s.image) for s in samples if s.image is not None]
        return torch.stack(images) if images else None

    def collate_train(self, samples: Sequence[Sample], max_length: int) -> dict[str, Any]:
        import torch

        encoded = [self.encode_train(s, max_length) for s in samples]
        pad = self.tokenizer.pad_token_id
        ids = pad_sequences([e[0] for e in encoded], pad, left=False)
        labels = pad_sequences([e[1] for e in encoded], IGNORE_INDEX, left=False)
        mask = pad_sequences([[1] * len(e[0]) for e in encoded], 0, left=False)
        batch = {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
            "samples": list(samples),
        }
        pixels = self._images(samples)
        if pixels is not None:
            batch["pixel_values"] = pixels
        return batch

    def collate_eval(self, samples: Sequence[Sample]) -> dict[str, Any]:
        import torch

        encoded = [self.encode_prompt(s) for s in samples]
        pad = self.tokenizer.pad_token_id
        batch = {
            "input_ids": torch.tensor(pad_sequences(encoded, pad, left=True)),
            "attention_mask": torch.tensor(
                pad_sequences([[1] * len(e) for e in encoded], 0, left=True)
            ),
            "samples": list(samples),
        }
        pixels = self._images(samples)
        if pixels is not None:
            batch["pixel_values"] = pixels
        return batch

    # -- model calls ---------------------------------------------------------------------
    @staticmethod
    def model_inputs(batch: dict[str, Any], device: Any, dtype: Any) -> dict[str, Any]:
        keys = ("input_ids", "attention_mask", "labels", "pixel_values")
        out = {k: batch[k].to(device) for k in keys if k in batch}
        if "pixel_values" in out:
            out["pixel_values"] = out["pixel_values"].to(dtype)
        return out

    def forward(self, model: Any, batch: dict[str, Any], device: Any, dtype: Any) -> Any:
        return model(**self.model_inputs(batch, device, dtype), use_cache=False)

    def generate(
        self,
        model: Any,
        batch: dict[str, Any],
        max_new_tokens: int,
        device: Any,
        dtype: Any,
        streamer: Any = None,
    ) -> list[str]:
        """Greedy answers for a left-padded batch, each cut at its first EOS. ``streamer``
        (a batch of one only) is a ``transformers`` streamer that receives the prompt ids, then
        each new token id as it is generated."""
        import torch

        inputs = self.model_inputs(batch, device, dtype)
        inputs.pop("labels", None)
        eos = self.tokenizer.eos_token_id
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
                streamer=streamer,
            )
        new = out[:, inputs["input_ids"].shape[1] :].tolist()
        texts = []
        for row in new:
            if eos in row:
                row = row[: row.index(eos)]
            texts.append(self.tokenizer.decode(row, skip_special_tokens=False).strip())
        return texts

    def count_parameters(self) -> dict[str, int]:
        model = self.model
        out = {"total": sum(p.numel() for p in model.parameters())}
        for part in ("vision_tower", "multi_modal_projector", "language_model"):
            out[part] = sum(p.numel() for n, p in model.named_parameters() if part in n)
        return out
