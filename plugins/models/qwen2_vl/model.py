"""``qwen2-vl`` (aliases ``qwen2-vl-2b``, ``qwen2-vl-7b``): Qwen2-VL from a local directory.

The directory is in the Hugging Face format, as ``Qwen/Qwen2-VL-2B-Instruct`` or
``Qwen/Qwen2-VL-7B-Instruct`` ship it (``config.json`` with ``model_type: qwen2_vl``, the
weights, ``tokenizer.json``, ``preprocessor_config.json``). Nothing is ever downloaded. The
directory is found, in this order, from ``model_args.path`` (``--set model.path=DIR`` or the
``--config`` YAML file) and the environment variable ``CVIT_BENCH_QWEN2_VL_PATH``.

Images are processed at dynamic resolution between ``min_pixels`` and ``max_pixels`` (default:
the directory's ``preprocessor_config.json``); fine-tuning recipes commonly cap ``max_pixels``
at ``1280*28*28`` to bound the number of image tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness.config import config_field
from cvit_bench.harness.errors import DataError
from cvit_bench.plugins.models.chat_adapter import (
    attention_field,
    check_attention,
    dtype_field,
    resolve_dtype,
)
from cvit_bench.plugins.models.local_dir import resolve_model_dir, revision
from cvit_bench.plugins.models.qwen2_vl_common import (
    IM_END,
    IMAGE_PAD,
    QWEN_SYSTEM,
    Qwen2VLFamilyAdapter,
    QwenChatTemplate,
)

PATH_ENV = "CVIT_BENCH_QWEN2_VL_PATH"
HOW_TO_GET = (
    "Get one with `huggingface-cli download Qwen/Qwen2-VL-2B-Instruct --local-dir DIR` (or "
    "Qwen/Qwen2-VL-7B-Instruct); then pass `--set model.path=DIR` or set "
    f"${PATH_ENV}. To try the harness without a model download: "
    "`cvit-bench run --method seqlora --bench synth-coin --model tiny-qwen2-vl`."
)


@dataclass
class Qwen2VLModelConfig:
    path: str | None = config_field(
        None, help=f"local Hugging Face Qwen2-VL model directory (default: ${PATH_ENV})"
    )
    dtype: str = dtype_field()
    attn_implementation: str = attention_field()
    min_pixels: int | None = config_field(
        None,
        help="smallest image area in pixels after resizing (default: the directory's "
        "preprocessor_config.json, 56*56 for the released models)",
    )
    max_pixels: int | None = config_field(
        None,
        help="largest image area in pixels after resizing, which bounds the image tokens "
        "(area / 28^2); default: the directory's preprocessor_config.json",
    )
    system_prompt: str | None = config_field(
        None, help=f"system turn of the ChatML template (default: Qwen's {QWEN_SYSTEM!r})"
    )


class Qwen2VL(Qwen2VLFamilyAdapter):
    name = "qwen2-vl"
    config_class = Qwen2VLModelConfig

    def __init__(self, config: Qwen2VLModelConfig | None = None) -> None:
        super().__init__(config or Qwen2VLModelConfig())
        self.path: Path | None = None

    @classmethod
    def preflight(cls, config: Qwen2VLModelConfig) -> None:
        """Refuse, before a run starts, an attention kernel this machine cannot run."""
        check_attention(config.attn_implementation, cls.name)

    def resolve_path(self) -> Path:
        return resolve_model_dir(
            self.config.path,
            PATH_ENV,
            "qwen2_vl",
            "Qwen2-VL",
            HOW_TO_GET,
            "this adapter reads Qwen2-VL only (Qwen2.5-VL has another architecture)",
        )

    def build(self, ctx: Any) -> None:
        from transformers import AutoTokenizer, Qwen2VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        c = self.config
        attn = check_attention(c.attn_implementation, self.name)
        self.path = self.resolve_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        vocab = self.tokenizer.get_vocab()
        lacking = [t for t in (IMAGE_PAD, IM_END) if t not in vocab]
        if lacking:
            raise DataError(
                f"the tokenizer in {self.path} has no {' or '.join(lacking)} token: it is not "
                f"Qwen2-VL's. {HOW_TO_GET}"
            )
        processor = Qwen2VLImageProcessorPil.from_pretrained(str(self.path))
        size = dict(processor.size)
        if c.min_pixels is not None:
            size["shortest_edge"] = c.min_pixels
        if c.max_pixels is not None:
            size["longest_edge"] = c.max_pixels
        processor.size = size
        self.image_processor = processor
        self.model = Qwen2VLForConditionalGeneration.from_pretrained(
            str(self.path), dtype=resolve_dtype(c.dtype), attn_implementation=attn
        )
        self.template = QwenChatTemplate(
            system=c.system_prompt if c.system_prompt is not None else QWEN_SYSTEM
        )
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": str(self.path) if self.path else None,
            "revision": revision(self.path) if self.path else None,
            "starting_point": "qwen2-vl-instruct",
        }
        if self.model is not None:
            out["parameters"] = self.count_parameters()
        return out
