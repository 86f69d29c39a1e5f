"""What the built-in tiny models share: options, the benchmark-trained tokenizer, seeded random
weights and the cached captioning pretraining.

A tiny model is built offline in seconds from a seed: a byte-level BPE tokenizer trained on the
benchmark's own text (``tiny_llava/tokenizer.py``), the family's architecture in miniature with
random weights, and a short captioning pretraining (``tiny_llava/pretrain.py``) that makes it a
pretrained starting point like the real ones. The tokenizer is cached under
``<cache_dir>/<name>/tokenizers/`` keyed by the options and the corpus, the pretrained weights
under ``<cache_dir>/<name>/<key>/`` keyed by the options and the tokenizer.

A family combines :class:`TinyModelMixin` with its adapter base and supplies
``build_random`` (model, image processor and template from ``self.tokenizer``),
``exchange_text`` and ``specials``.
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
from cvit_bench.harness.errors import UsageError

from .chat_adapter import attention_field, check_attention
from .tiny_llava.pretrain import pretrain, pretraining_items
from .tiny_llava.tokenizer import LLAVA_SPECIALS, SpecialTokens, load_tokenizer, train_tokenizer

UNCACHED_OPTIONS = ("threads", "pretrain_workers", "attn_implementation")
"""Options that change how fast the model runs, not its weights: left out of cache keys."""


@dataclass
class TinyModelConfig:
    """Options every tiny model has (a family adds its own)."""

    seed: int = config_field(
        0, help="seed of the random initialisation and of the pretraining data"
    )
    image_size: int = config_field(
        32, help="input image side in pixels (images are padded to square, then resized)"
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
    pretrain_steps: int = config_field(1200, help="captioning pretraining steps (0: a random base)")
    pretrain_samples: int = config_field(6000, help="pretraining images drawn")
    pretrain_batch: int = config_field(32, help="pretraining batch size")
    pretrain_lr: float = config_field(2e-3, help="pretraining learning rate (AdamW, cosine)")
    threads: int = config_field(
        1,
        help="CPU threads torch uses (0: leave torch's setting); a model this small gains "
        "nothing from more and slows down many times over when the cores are shared",
    )
    pretrain_microbatches: int = config_field(
        2,
        help="parts each pretraining batch is cut into, their gradients added in order; "
        "the weights depend on it",
    )
    pretrain_workers: int = config_field(
        0,
        help="processes computing a pretraining step's parts at once (0: one per part, at most "
        "the usable CPUs and $CVIT_BENCH_WORKERS); the weights are the same for any number",
    )
    pretrain_vision: bool = config_field(
        True,
        help="train the vision tower during pretraining too (the real starting points have a pretrained CLIP)",
    )
    attn_implementation: str = attention_field()


def pretraining_version() -> str:
    """Changes whenever the pretraining captions do, so caches of older captions are not reused."""
    from cvit_bench.plugins.benchmarks.synth_coin import PRETRAIN_VERSION

    return str(PRETRAIN_VERSION)


def benchmark_questions(benchmark: Any) -> list[tuple[str, str]]:
    """Every (question, answer) exchange of every task, train and eval."""
    pairs: list[tuple[str, str]] = []
    for task in benchmark.tasks():
        for getter in (benchmark.train_samples, benchmark.eval_samples):
            for sample in getter(task.name):
                pairs += [(t.human, t.gpt) for t in sample.conversation()]
    return pairs


class TinyModelMixin:
    """The tiny-model build: tokenizer, random weights, cached pretraining, provenance."""

    name: ClassVar[str]
    format_version: ClassVar[int] = 1
    """Bump when the architecture or pretraining code changes what a cache entry holds."""
    specials: ClassVar[SpecialTokens] = LLAVA_SPECIALS
    # A 0.5M-parameter model learns a task in a few hundred steps only at 10x LLaVA-1.5's
    # learning rate; generating for it, batches of 64 take half the time of 16 (same answers).
    # A step of 8 is two micro-batches of 4, which a CPU process computes on two cores at once
    # (the engine's ``train_processes``; the same weights on one core).
    run_defaults: ClassVar[dict[str, Any]] = {
        "train": {"lr": 2e-3, "batch_size": 4, "grad_accum": 2},
        "eval": {"batch_size": 64},
    }

    config: Any
    model: Any
    tokenizer: Any

    def _init_tiny(self) -> None:
        self.cache_path: Path | None = None
        self.pretrain_stats: dict[str, Any] = {}

    # -- family hooks ----------------------------------------------------------------------
    def build_random(self) -> None:
        """The model with seeded random weights (``self.tokenizer`` is set)."""
        raise NotImplementedError

    def exchange_text(self, question: str, answer: str) -> str:
        """One exchange as the family's chat template lays it out (tokenizer corpus)."""
        raise NotImplementedError

    def template_texts(self) -> list[str]:
        """Template text the tokenizer should see besides the exchanges."""
        return []

    @classmethod
    def preflight(cls, config: Any) -> None:
        """Refuse, before a run starts, an attention kernel this machine cannot run."""
        check_attention(config.attn_implementation, cls.name)

    # -- construction ----------------------------------------------------------------------
    def build_tokenizer(self, texts: list[str]) -> None:
        c = self.config
        extra = self.template_texts()
        if c.pretrain_steps:
            extra += [self.exchange_text(p, cap) for _, p, cap in self._pretraining_items()]
        self.tokenizer = train_tokenizer(texts + extra, c.vocab_size, self.specials)

    def _pretraining_items(self) -> list[tuple[Any, str, str]]:
        if not hasattr(self, "_items"):
            c = self.config
            self._items = pretraining_items(c.pretrain_samples, c.seed, c.image_size)
        return self._items

    def _identity(self) -> dict[str, Any]:
        """The options that change the weights."""
        out = dataclasses.asdict(self.config)
        for key in UNCACHED_OPTIONS:
            out.pop(key, None)
        return out

    def _pretrain_workers(self) -> int:
        """Processes for pretraining's batch parts: the option, or one per part and usable CPU."""
        from cvit_bench.harness import parallel

        c = self.config
        if c.pretrain_workers < 0:
            raise UsageError(
                f"model.pretrain_workers must be 0 (automatic) or more; got {c.pretrain_workers}"
            )
        if c.pretrain_microbatches < 1:
            raise UsageError(
                f"model.pretrain_microbatches must be 1 or more; got {c.pretrain_microbatches}"
            )
        # automatic: no extra processes where they cannot be forked (the same weights)
        given = c.pretrain_workers or (parallel.default_workers() if parallel.can_fork() else 1)
        return max(1, min(given, c.pretrain_microbatches))

    def cache_key(self) -> str:
        blob = json.dumps(
            {
                "format": self.format_version,
                "pretraining_data": pretraining_version(),
                "config": self._identity(),
                "tokenizer": self.tokenizer.backend_tokenizer.to_str(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def build(self, ctx: Any) -> None:
        import torch
        from safetensors.torch import load_file

        check_attention(self.config.attn_implementation, self.name)
        self._pretrain_workers()  # bad pretraining options stop the run before any work
        if self.config.threads > 0 and not torch.cuda.is_available():
            torch.set_num_threads(self.config.threads)
        texts = [self.exchange_text(q, a) for q, a in benchmark_questions(ctx.benchmark)]
        cache_root = Path(ctx.cache_dir) / self.name
        corpus_key = hashlib.sha256(
            json.dumps([self._identity(), pretraining_version(), sorted(set(texts))]).encode()
        ).hexdigest()[:16]
        tok_file = cache_root / "tokenizers" / f"{corpus_key}.json"
        if tok_file.exists():
            self.tokenizer = load_tokenizer(str(tok_file), self.specials)
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
        self._pretrain_and_cache(entry)

    def _pretrain_and_cache(self, entry: Path) -> None:
        import torch
        from safetensors.torch import save_file

        c = self.config
        start = time.perf_counter()
        workers = self._pretrain_workers()
        threads = torch.get_num_threads()
        # one thread per process: a matrix product's last bits depend on how many threads
        # share it, and the base must not depend on the machine
        torch.set_num_threads(1)
        try:
            losses = pretrain(
                self,
                self._pretraining_items(),
                c.pretrain_steps,
                c.pretrain_batch,
                c.pretrain_lr,
                c.seed,
                c.pretrain_vision,
                microbatches=c.pretrain_microbatches,
                workers=workers,
            )
        finally:
            torch.set_num_threads(threads)
        self.pretrain_stats = {
            "steps": c.pretrain_steps,
            "workers": workers,
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
            "revision": f"{self.name}-v{self.format_version}",
            "starting_point": "caption-pretrained" if self.config.pretrain_steps else "random",
            "config": dataclasses.asdict(self.config),
            "pretraining": self.pretrain_stats,
        }
        if self.model is not None:
            out["parameters"] = self.count_parameters()  # type: ignore[attr-defined]
        if self.cache_path is not None:
            out["cache"] = str(self.cache_path)
        return out


def _atomic_text(path: Path, text: str) -> None:
    from cvit_bench.harness.io import atomic_write_text

    atomic_write_text(path, text)
