"""``tiny-llava``: a LLaVA-1.5-architecture model small enough to train on a CPU in seconds.

``LlavaForConditionalGeneration`` with a CLIP vision tower, the two-layer GELU projector and a
Llama language model, all with random weights drawn from ``seed``, a byte-level BPE tokenizer
trained on the benchmark's own text, and LLaVA-1.5's image processing (pad to square, resize,
normalise). A short captioning pretraining stage (see ``pretrain.py``) makes it a pretrained
starting point like the real ones; the result is cached under
``<cache_dir>/tiny-llava/<key>/``, keyed by the configuration and the tokenizer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cvit_bench.harness.config import config_field
from cvit_bench.plugins.models.llava_common import IMAGE_TOKEN, ChatTemplate, LlavaFamilyAdapter

from .pretrain import pretrain, pretraining_items
from .tokenizer import load_tokenizer, train_tokenizer

FORMAT_VERSION = 1
"""Bump when the architecture or pretraining code changes what a cache entry holds."""


@dataclass
class TinyLlavaConfig:
    seed: int = config_field(
        0, help="seed of the random initialisation and of the pretraining data"
    )
    image_size: int = config_field(
        32, help="input image side in pixels (images are padded to square, then resized)"
    )
    patch_size: int = config_field(
        8, help="vision patch side; (image_size/patch_size)^2 image tokens"
    )
    vision_hidden: int = config_field(64, help="vision tower width")
    vision_layers: int = config_field(2, help="vision tower depth")
    vision_heads: int = config_field(4, help="vision attention heads")
    text_hidden: int = config_field(128, help="language model width")
    text_layers: int = config_field(2, help="language model depth")
    text_heads: int = config_field(4, help="language model attention heads")
    text_intermediate: int = config_field(256, help="language model MLP width")
    vocab_size: int = config_field(
        1024, help="BPE vocabulary size (at most; a small corpus gives fewer)"
    )
    system_prompt: str = config_field(
        "",
        help="system line of the Vicuna v1 template (LLaVA's is long; the tiny model drops it by default)",
    )
    pretrain_steps: int = config_field(400, help="captioning pretraining steps (0: a random base)")
    pretrain_samples: int = config_field(2000, help="pretraining images drawn")
    pretrain_batch: int = config_field(32, help="pretraining batch size")
    pretrain_lr: float = config_field(2e-3, help="pretraining learning rate (AdamW, cosine)")
    threads: int = config_field(
        1,
        help="CPU threads torch uses (0: leave torch's setting); a model this small gains "
        "nothing from more and slows down many times over when the cores are shared",
    )
    pretrain_vision: bool = config_field(
        True,
        help="train the vision tower during pretraining too (the real starting points have a pretrained CLIP)",
    )


def _pretraining_version() -> str:
    """Changes whenever the pretraining captions do, so caches of older captions are not reused."""
    from cvit_bench.plugins.benchmarks.synth_coin import PRETRAIN_VERSION

    return str(PRETRAIN_VERSION)


def benchmark_texts(benchmark: Any) -> list[str]:
    """Every prompt and answer of every task, train and eval."""
    texts: list[str] = []
    for task in benchmark.tasks():
        for getter in (benchmark.train_samples, benchmark.eval_samples):
            for sample in getter(task.name):
                texts += [_exchange(t.human, t.gpt) for t in sample.conversation()]
    return texts


def _exchange(question: str, answer: str) -> str:
    """One exchange as the chat template lays it out (answers follow a space)."""
    return f"USER: {question} ASSISTANT: {answer}"


class TinyLlava(LlavaFamilyAdapter):
    name = "tiny-llava"
    config_class = TinyLlavaConfig
    # A 0.5M-parameter model learns a task in ~125 steps only at 10x LLaVA-1.5's learning rate.
    run_defaults: ClassVar[dict[str, Any]] = {"train": {"lr": 2e-3}}

    def __init__(self, config: TinyLlavaConfig | None = None) -> None:
        super().__init__(config or TinyLlavaConfig())
        self.cache_path: Path | None = None
        self.pretrain_stats: dict[str, Any] = {}

    # -- construction --------------------------------------------------------------------
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
        config._attn_implementation = "sdpa"
        self.model = LlavaForConditionalGeneration(config).float()
        self.model.generation_config.do_sample = False
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)

    def build_tokenizer(self, texts: list[str]) -> None:
        c = self.config
        extra = [c.system_prompt, "USER: ASSISTANT:"]
        if c.pretrain_steps:
            extra += [_exchange(p, cap) for _, p, cap in self._pretraining_items()]
        self.tokenizer = train_tokenizer(texts + extra, c.vocab_size)

    def _pretraining_items(self) -> list[tuple[Any, str, str]]:
        if not hasattr(self, "_items"):
            c = self.config
            self._items = pretraining_items(c.pretrain_samples, c.seed, c.image_size)
        return self._items

    def _identity(self) -> dict[str, Any]:
        """The options that change the weights (``threads`` does not)."""
        out = dataclasses.asdict(self.config)
        out.pop("threads", None)
        return out

    def cache_key(self) -> str:
        blob = json.dumps(
            {
                "format": FORMAT_VERSION,
                "pretraining_data": _pretraining_version(),
                "config": self._identity(),
                "tokenizer": self.tokenizer.backend_tokenizer.to_str(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def build(self, ctx: Any) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        if self.config.threads > 0 and not torch.cuda.is_available():
            torch.set_num_threads(self.config.threads)
        texts = benchmark_texts(ctx.benchmark)
        cache_root = Path(ctx.cache_dir) / "tiny-llava"
        corpus_key = hashlib.sha256(
            json.dumps([self._identity(), _pretraining_version(), sorted(set(texts))]).encode()
        ).hexdigest()[:16]
        tok_file = cache_root / "tokenizers" / f"{corpus_key}.json"
        if tok_file.exists():
            self.tokenizer = load_tokenizer(str(tok_file))
        else:
            self.build_tokenizer(texts)
            _atomic_text(tok_file, self.tokenizer.backend_tokenizer.to_str())
        self.build_random()
        if not self.config.pretrain_steps:
            self.cache_path = None
            return
        entry = cache_root / self.cache_key()
        self.cache_path = entry
        weights = entry / "model.safetensors"
        if weights.exists():
            self.model.load_state_dict(load_file(str(weights)))
            self.pretrain_stats = json.loads((entry / "pretrain.json").read_text())
            return
        c = self.config
        start = time.perf_counter()
        losses = pretrain(
            self,
            self._pretraining_items(),
            c.pretrain_steps,
            c.pretrain_batch,
            c.pretrain_lr,
            c.seed,
            c.pretrain_vision,
        )
        self.pretrain_stats = {
            "steps": c.pretrain_steps,
            "loss_first": losses[0],
            "loss_last": sum(losses[-20:]) / len(losses[-20:]),
            "wall_s": time.perf_counter() - start,
        }
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
        try:
            state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            (tmp / "tokenizer.json").write_text(self.tokenizer.backend_tokenizer.to_str())
            (tmp / "config.json").write_text(json.dumps(dataclasses.asdict(c), indent=2))
            (tmp / "pretrain.json").write_text(json.dumps(self.pretrain_stats, indent=2))
            try:
                os.replace(tmp, entry)
            except OSError:  # another process finished the same entry first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": "built-in",
            "revision": f"tiny-llava-v{FORMAT_VERSION}",
            "starting_point": "caption-pretrained" if self.config.pretrain_steps else "random",
            "config": dataclasses.asdict(self.config),
            "pretraining": self.pretrain_stats,
        }
        if self.model is not None:
            out["parameters"] = self.count_parameters()
        if self.cache_path is not None:
            out["cache"] = str(self.cache_path)
        return out


def _atomic_text(path: Path, text: str) -> None:
    from cvit_bench.harness.io import atomic_write_text

    atomic_write_text(path, text)
