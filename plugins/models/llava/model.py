"""``llava-1.5`` (aliases ``llava-1.5-7b``, ``llava-1.5-13b``): LLaVA-1.5 from a local directory.

The directory is in the Hugging Face llava format (what ``llava-hf/llava-1.5-7b-hf`` ships, or
what ``cvit-bench model convert-llava`` writes from the original release). Nothing is ever
downloaded. The directory is found, in this order, from ``model_args.path`` (``--set
model.path=DIR`` or the ``--config`` YAML file) and the environment variable
``CVIT_BENCH_LLAVA_PATH``.

Starting points, as the CVIT literature names them:

* ``v15pf``: full LLaVA-1.5 (pretraining and instruction tuning done); UCIT and MLLM-CL.
* ``v15p``: Vicuna + CLIP + the pretrained projector only (no instruction tuning); CoIN, which
  avoids LLaVA's instruction data leaking into its tasks. Point ``path`` at a directory
  converted from Vicuna, CLIP and ``mm_projector.bin``.
* ``v15``: as ``v15p`` but with a freshly initialised projector (seeded).
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
from cvit_bench.plugins.models.llava_common import IMAGE_TOKEN, ChatTemplate, LlavaFamilyAdapter
from cvit_bench.plugins.models.local_dir import missing_files, resolve_model_dir, revision

PATH_ENV = "CVIT_BENCH_LLAVA_PATH"
STARTING_POINTS = ("v15pf", "v15p", "v15")
CONVERT_HINT = "convert the original release with `cvit-bench model convert-llava`"
HOW_TO_GET = (
    "Get one with `huggingface-cli download llava-hf/llava-1.5-7b-hf --local-dir DIR` "
    "(full LLaVA-1.5, starting point v15pf), or convert the original release "
    "(Vicuna weights + mm_projector.bin + CLIP) with `cvit-bench model convert-llava "
    "--llm VICUNA_DIR --projector mm_projector.bin --clip CLIP_DIR --out DIR`; then pass "
    f"`--set model.path=DIR` or set ${PATH_ENV}. To try the harness without a model download: "
    "`cvit-bench run --method seqlora --bench synth-coin --model tiny-llava`."
)


@dataclass
class LlavaModelConfig:
    path: str | None = config_field(
        None, help=f"local llava-format model directory (default: ${PATH_ENV})"
    )
    starting_point: str | None = config_field(
        None,
        help="v15pf (full LLaVA-1.5), v15p (Vicuna + CLIP + pretrained projector) or v15 "
        "(fresh projector); default: the benchmark's reference starting point, else v15pf",
        choices=(None, *STARTING_POINTS),
    )
    seed: int = config_field(0, help="seed of a fresh projector (starting point v15)")
    dtype: str = dtype_field()
    attn_implementation: str = attention_field()
    system_prompt: str | None = config_field(
        None, help="system line of the Vicuna v1 template (default: LLaVA-1.5's)"
    )


def check_model_dir(path: Path) -> list[str]:
    """What is missing from a llava-format directory (empty when complete)."""
    return missing_files(path, "llava", CONVERT_HINT)


class Llava15(LlavaFamilyAdapter):
    name = "llava-1.5"
    config_class = LlavaModelConfig

    def __init__(self, config: LlavaModelConfig | None = None) -> None:
        super().__init__(config or LlavaModelConfig())
        self.path: Path | None = None
        self.starting_point = "v15pf"

    @classmethod
    def preflight(cls, config: LlavaModelConfig) -> None:
        """Refuse, before a run starts, an attention kernel this machine cannot run."""
        check_attention(config.attn_implementation, cls.name)

    def resolve_path(self) -> Path:
        return resolve_model_dir(
            self.config.path, PATH_ENV, "llava", "LLaVA-1.5", HOW_TO_GET, CONVERT_HINT
        )

    def build(self, ctx: Any) -> None:
        from transformers import AutoTokenizer, LlavaForConditionalGeneration
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        c = self.config
        self.path = self.resolve_path()
        self.starting_point = (
            c.starting_point or getattr(ctx.benchmark, "reference_starting_point", None) or "v15pf"
        )
        attn = check_attention(c.attn_implementation, self.name)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        if IMAGE_TOKEN not in self.tokenizer.get_vocab():
            raise DataError(
                f"the tokenizer in {self.path} has no {IMAGE_TOKEN} token: the directory is not "
                f"in the llava format. {HOW_TO_GET}"
            )
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.unk_token
        self.model = LlavaForConditionalGeneration.from_pretrained(
            str(self.path), dtype=resolve_dtype(c.dtype), attn_implementation=attn
        )
        processor = LlavaImageProcessorPil.from_pretrained(str(self.path))
        processor.do_pad = True
        self.image_processor = processor
        vision = self.model.config.vision_config
        tokens = (vision.image_size // vision.patch_size) ** 2
        if self.model.config.vision_feature_select_strategy == "full":
            tokens += 1
        self.image_seq_length = tokens
        self.template = ChatTemplate(
            system=c.system_prompt if c.system_prompt is not None else ChatTemplate().system
        )
        if self.starting_point == "v15":
            self.reset_projector(c.seed)
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    def reset_projector(self, seed: int) -> None:
        """A freshly initialised projector (starting point ``v15``), drawn from ``seed``."""
        import torch

        projector = self.model.model.multi_modal_projector
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in projector.modules():
                if isinstance(module, torch.nn.Linear):
                    module.reset_parameters()

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": str(self.path) if self.path else None,
            "revision": revision(self.path) if self.path else None,
            "starting_point": self.starting_point,
        }
        if self.model is not None:
            out["parameters"] = self.count_parameters()
        return out
