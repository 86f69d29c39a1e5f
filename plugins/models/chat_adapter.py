"""What every chat-template model adapter shares: answer-only loss, batching, greedy generation.

A model family subclasses :class:`ChatAdapterBase` and says how its template lays out a
conversation (``template.segments``), how the image placeholder of a prompt becomes tokens
(``image_text``), how images become model inputs (``process_image``, ``image_inputs``) and
which token ends an answer (``end_of_answer_id``). The rules below are the same for every
family, so that scores of two families mean the same thing:

* training loss covers each answer's tokens and the end-of-answer token after it, nothing
  else; the prompt's tokens are checked to be an exact prefix of prompt + answer, and where a
  tokenizer merges across the boundary the answer is tokenised on its own instead (the prompt
  stays exactly what inference sees); the end-of-answer id is appended as an id, never as text;
* generation is greedy over left-padded batches; each answer is cut at its first stop token and
  decoded with special tokens kept, so a stray special token costs exact match as it should.

The DeepSpeed engine uses ``collate_train``, ``collate_eval``, ``forward``, ``generate``,
``encode_prompt``, ``template.render`` and ``is_projector_param``; methods may also use
``model_inputs`` (to call the model themselves) and ``pooled_image_features``.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any, ClassVar

from cvit_bench.harness.types import Sample, Turn

IMAGE_TOKEN = "<image>"
"""The placeholder a template puts where the image goes; ``image_text`` replaces it."""
IGNORE_INDEX = -100

ENCODED_TEXTS = 8192
"""Texts whose token ids an adapter keeps (the oldest go first). Training encodes every sample
in every step it is drawn in, and the same question texts recur across samples, epochs and
stages; the tokenizer's Python wrapper costs about a tenth of a tiny model's training step."""
LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTENTION_CHOICES = ("sdpa", "eager", "flash_attention_2")


def pad_sequences(rows: Sequence[Sequence[int]], value: int, left: bool) -> list[list[int]]:
    width = max(len(r) for r in rows)
    if left:
        return [[value] * (width - len(r)) + list(r) for r in rows]
    return [list(r) + [value] * (width - len(r)) for r in rows]


def attention_field() -> Any:
    """The ``attn_implementation`` option every built-in model config has."""
    from cvit_bench.harness.config import config_field

    return config_field(
        "sdpa",
        help="attention kernel: sdpa (PyTorch), eager, or flash_attention_2 (needs the "
        "flash-attn package and a CUDA GPU; an error otherwise, never a silent fallback)",
        choices=ATTENTION_CHOICES,
    )


def dtype_field() -> Any:
    """The ``dtype`` option of the models loaded from a directory."""
    from cvit_bench.harness.config import config_field

    return config_field(
        "auto",
        help="weights dtype: auto (bf16 on GPU, fp32 on CPU), bf16 or fp32",
        choices=("auto", "bf16", "fp32"),
    )


def resolve_dtype(choice: str) -> Any:
    """The torch dtype of a ``dtype`` option (``auto``: bf16 on a GPU, fp32 on a CPU)."""
    import torch

    auto = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return {"bf16": torch.bfloat16, "fp32": torch.float32}.get(choice, auto)


def template_questions(
    sample: Sample, with_answers: bool, image_prefix: str
) -> list[tuple[Turn, str]]:
    """The turns a chat template lays out (only the first when ``with_answers`` is false), each
    with its question: the user's text without any image placeholder, and ``image_prefix``
    before the first question when the sample has an image."""
    turns = sample.conversation()
    if not with_answers:
        turns = turns[:1]
    out = []
    for i, turn in enumerate(turns):
        question = turn.human.replace(IMAGE_TOKEN, "").strip()
        if i == 0 and sample.image is not None:
            question = f"{image_prefix}{question}"
        out.append((turn, question))
    return out


def check_attention(choice: str, model: str) -> str:
    """``choice`` when this machine can run it; ``flash_attention_2`` needs the ``flash_attn``
    package and a CUDA GPU, and asking for it without them is a ``UsageError`` (never a silent
    fallback to another kernel)."""
    from cvit_bench.harness.errors import UsageError

    if choice not in ATTENTION_CHOICES:
        raise UsageError(
            f"model {model!r}: attn_implementation must be one of {list(ATTENTION_CHOICES)}, "
            f"got {choice!r}"
        )
    if choice != "flash_attention_2":
        return choice
    import importlib.util

    if importlib.util.find_spec("flash_attn") is None:
        raise UsageError(
            f"model {model!r}: attn_implementation=flash_attention_2 needs the flash-attn "
            "package, which is not installed (pip install 'cvit-bench[gpu]' on a machine with a "
            "CUDA GPU); use attn_implementation=sdpa (the default) or eager"
        )
    import torch

    if not torch.cuda.is_available():
        raise UsageError(
            f"model {model!r}: attn_implementation=flash_attention_2 needs a CUDA GPU and none "
            "is available; use attn_implementation=sdpa (the default) or eager"
        )
    return choice


class ChatAdapterBase:
    """Base of the built-in model adapters; a subclass fills ``build`` and the family hooks.

    After ``build`` these attributes are set: ``model`` (the Hugging Face model, possibly
    wrapped by a method), ``tokenizer``, ``image_processor`` and ``template``.

    Class attributes:
        features: what the adapter offers methods (see ``cvit_bench.harness.capabilities``).
        projector_module: name of the module between the vision encoder and the language
            model (``train.projector_lr`` trains it; peft saves it with an adapter).
        vision_module: name of the vision encoder module.
        parameter_parts: module names whose parameter counts ``describe()`` reports.
        input_keys: the batch entries passed to the model.
    """

    name: ClassVar[str] = "chat-adapter"
    config_class: ClassVar[type] = type(None)
    features: ClassVar[frozenset[str]] = frozenset({"lora"})
    projector_module: ClassVar[str] = "multi_modal_projector"
    vision_module: ClassVar[str] = "vision_tower"
    parameter_parts: ClassVar[tuple[str, ...]] = ()
    input_keys: ClassVar[tuple[str, ...]] = ("input_ids", "attention_mask", "labels")
    add_bos: bool = True

    def __init__(self, config: Any = None) -> None:
        self.config = config
        self.model: Any = None
        self.tokenizer: Any = None
        self.image_processor: Any = None
        self.template: Any = None
        self._pixel_cache: dict[str, Any] = {}
        self._encoded: tuple[Any, dict[str, array]] = (None, {})

    # -- family hooks ----------------------------------------------------------------------
    def image_text(self, sample: Sample) -> str:
        """The text that replaces the image placeholder of ``sample``'s prompt."""
        raise NotImplementedError

    def process_image(self, image: Any) -> Any:
        """The processed form of one RGB PIL image (cached per path by ``pixel_values``)."""
        raise NotImplementedError

    def image_inputs(self, samples: Sequence[Sample]) -> dict[str, Any]:
        """Model inputs for the images of ``samples`` (samples without an image give none)."""
        raise NotImplementedError

    def token_inputs(self, input_ids: Any) -> dict[str, Any]:
        """Per-token inputs derived from the ids (Qwen2-VL's ``mm_token_type_ids``)."""
        return {}

    @property
    def end_of_answer_id(self) -> int:
        """The token appended after every answer and supervised with it."""
        return self.tokenizer.eos_token_id

    @property
    def stop_ids(self) -> list[int]:
        """Tokens that end a generated answer."""
        return [self.end_of_answer_id]

    # -- protocol --------------------------------------------------------------------------
    def create_engine(self, ctx: Any) -> Any:
        from cvit_bench.harness.engine import DeepSpeedEngine

        return DeepSpeedEngine(self)

    def lora_targets(self) -> list[str]:
        return list(LLAMA_LORA_TARGETS)

    def is_projector_param(self, name: str) -> bool:
        return self.projector_module in name

    def submodule(self, suffix: str) -> Any:
        """The first module of ``self.model`` (whatever wraps it) named ``...suffix``."""
        for name, module in self.model.named_modules():
            if name == suffix or name.endswith("." + suffix):
                return module
        raise LookupError(f"{type(self.model).__name__} has no module named {suffix!r}")

    # -- images ----------------------------------------------------------------------------
    def pixel_values(self, path: str) -> Any:
        """The processed image for ``path`` (cached: tasks are evaluated many times)."""
        cached = self._pixel_cache.get(path)
        if cached is None:
            from PIL import Image

            from cvit_bench.harness.errors import DataError

            try:
                with Image.open(path) as img:
                    rgb = img.convert("RGB")
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read image {path}: {exc}") from exc
            cached = self.process_image(rgb)
            self._pixel_cache[path] = cached
        return cached

    # -- tokenisation ----------------------------------------------------------------------
    def _encode(self, text: str, sample: Sample | None = None) -> list[int]:
        if IMAGE_TOKEN in text:
            text = text.replace(IMAGE_TOKEN, self.image_text(sample) if sample else "")
        tokenizer, table = self._encoded
        if tokenizer is not self.tokenizer:  # built, loaded or replaced since: start afresh
            table = {}
            self._encoded = (self.tokenizer, table)
        ids = table.get(text)
        if ids is None:
            # 4 bytes an id: a LLaVA prompt's 600-odd ids as Python ints would take 25 KB
            ids = array("i", self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if len(table) >= ENCODED_TEXTS:
                del table[next(iter(table))]
            table[text] = ids
        return list(ids)

    def _prefix(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and self.add_bos else []

    def _encode_segments(
        self, segments: Sequence[tuple[str, str | None]], sample: Sample | None = None
    ) -> tuple[list[int], list[int]]:
        """Ids and labels of ``(prompt, answer)`` segments of ``sample``'s conversation; a last
        answer of ``None`` leaves the ids ending in that turn's prompt, ready for generation."""
        end = self.end_of_answer_id
        ids = self._prefix()
        labels = [IGNORE_INDEX] * len(ids)
        for prompt, answer in segments:
            prompt_ids = self._encode(prompt, sample)
            if answer is None:
                ids += prompt_ids
                labels += [IGNORE_INDEX] * len(prompt_ids)
                break
            full_ids = self._encode(prompt + answer, sample)
            if full_ids[: len(prompt_ids)] == prompt_ids:
                answer_ids = full_ids[len(prompt_ids) :]
            else:  # the tokenizer merged across the boundary: keep the prompt as inference sees it
                answer_ids = self._encode(answer)
            ids += prompt_ids + answer_ids + [end]
            labels += [IGNORE_INDEX] * len(prompt_ids) + answer_ids + [end]
        return ids, labels

    def encode_train(self, sample: Sample, max_length: int) -> tuple[list[int], list[int]]:
        """Token ids and labels (``IGNORE_INDEX`` outside answers) for one training sample."""
        segments = self.template.segments(sample, with_answers=True)
        ids, labels = self._encode_segments(segments, sample)
        return ids[:max_length], labels[:max_length]

    def encode_prompt(self, sample: Sample) -> list[int]:
        return self._prefix() + self._encode(self.template.render(sample), sample)

    # -- chat ------------------------------------------------------------------------------
    def chat_conversation(self, history: Sequence[Turn], question: str, image: str | None):
        """The conversation as a multi-turn sample whose last answer is still open."""
        turns = (*history, Turn(question, ""))
        return Sample(id="chat", task="chat", prompt=turns[0].human, image=image, turns=turns)

    def chat_segments(
        self, history: Sequence[Turn], question: str, image: str | None
    ) -> list[tuple[str, str | None]]:
        """The conversation laid out as training lays out a multi-turn sample: every earlier
        exchange with its answer (then the end-of-answer token), and ``question``'s prompt last
        (answer ``None``)."""
        conversation = self.chat_conversation(history, question, image)
        segments = self.template.segments(conversation, with_answers=True)
        return [*segments[:-1], (segments[-1][0], None)]

    def render_chat(self, history: Sequence[Turn], question: str, image: str | None) -> str:
        """The generation prompt of ``question`` after ``history`` as text; the end-of-answer
        token after each earlier answer is shown as the tokenizer spells it."""
        end = self.tokenizer.convert_ids_to_tokens(self.end_of_answer_id) or ""
        return "".join(
            prompt + (f"{answer}{end}" if answer is not None else "")
            for prompt, answer in self.chat_segments(history, question, image)
        )

    def collate_chat(
        self, history: Sequence[Turn], question: str, image: str | None
    ) -> dict[str, Any]:
        """A batch of one conversation for ``generate``: the ids of ``chat_segments``.
        ``batch["samples"]`` holds ``question`` on ``image`` as an evaluation sample, which is
        what a method's inference routing looks at. Without history the ids equal
        ``collate_eval`` of that sample."""
        conversation = self.chat_conversation(history, question, image)
        ids, _ = self._encode_segments(self.chat_segments(history, question, image), conversation)
        sample = Sample(id="chat", task="chat", prompt=question, image=image)
        return self._batch([sample], [ids], left=True)

    # -- batches ---------------------------------------------------------------------------
    def _batch(self, samples: Sequence[Sample], rows: list[list[int]], left: bool) -> dict:
        import torch

        pad = self.tokenizer.pad_token_id
        ids = torch.tensor(pad_sequences(rows, pad, left=left))
        batch: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": torch.tensor(pad_sequences([[1] * len(r) for r in rows], 0, left)),
            "samples": list(samples),
        }
        batch.update(self.token_inputs(ids))
        batch.update(self.image_inputs(samples))
        return batch

    def collate_train(
        self,
        samples: Sequence[Sample],
        max_length: int,
        encoded: Sequence[tuple[list[int], list[int]]] | None = None,
    ) -> dict[str, Any]:
        """A right-padded training batch. ``encoded``: the samples' ``encode_train`` results
        when the caller already has them (a loop over the same samples many times)."""
        import torch

        if encoded is None:
            encoded = [self.encode_train(s, max_length) for s in samples]
        batch = self._batch(samples, [e[0] for e in encoded], left=False)
        labels = pad_sequences([e[1] for e in encoded], IGNORE_INDEX, left=False)
        batch["labels"] = torch.tensor(labels)
        return batch

    def collate_eval(
        self, samples: Sequence[Sample], encoded: Sequence[list[int]] | None = None
    ) -> dict[str, Any]:
        """A left-padded generation batch. ``encoded``: the samples' ``encode_prompt`` results
        when the caller already has them."""
        if encoded is None:
            encoded = [self.encode_prompt(s) for s in samples]
        return self._batch(samples, list(encoded), left=True)

    # -- model calls -----------------------------------------------------------------------
    def model_inputs(self, batch: dict[str, Any], device: Any, dtype: Any) -> dict[str, Any]:
        """The batch's model inputs on ``device``; floating-point image inputs in ``dtype``."""
        out = {k: batch[k].to(device) for k in self.input_keys if k in batch}
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
        """Greedy answers for a left-padded batch, each cut at its first stop token.
        ``streamer`` (a batch of one only) is a ``transformers`` streamer that receives the
        prompt ids, then each new token id as it is generated."""
        import torch

        inputs = self.model_inputs(batch, device, dtype)
        inputs.pop("labels", None)
        stops = self.stop_ids
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                eos_token_id=stops if len(stops) > 1 else stops[0],
                pad_token_id=self.tokenizer.pad_token_id,
                use_cache=True,
                streamer=streamer,
            )
        new = out[:, inputs["input_ids"].shape[1] :].tolist()
        texts = []
        for row in new:
            cut = min((row.index(s) for s in stops if s in row), default=len(row))
            texts.append(self.tokenizer.decode(row[:cut], skip_special_tokens=False).strip())
        return texts

    def count_parameters(self) -> dict[str, int]:
        model = self.model
        out = {"total": sum(p.numel() for p in model.parameters())}
        for part in self.parameter_parts:
            out[part] = sum(p.numel() for n, p in model.named_parameters() if part in n)
        return out
