"""A byte-level BPE tokenizer trained offline on the benchmark's own text.

Byte-level BPE can spell any string (every byte is in the base alphabet), so an answer the
model never saw is still representable, and decoding reproduces the text exactly. The
training corpus is de-duplicated and sorted, so the same texts give the same tokenizer. The
special tokens come first in the vocabulary, in the order :class:`SpecialTokens` lists them;
each tiny model family names its own (``LLAVA_SPECIALS`` here, Qwen2-VL's in ``tiny_qwen2_vl``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cvit_bench.plugins.models.chat_adapter import IMAGE_TOKEN


@dataclass(frozen=True)
class SpecialTokens:
    """The special tokens of a tiny tokenizer and the roles ``transformers`` gives them."""

    pad: str
    eos: str
    bos: str | None = None
    unk: str | None = None
    extra: tuple[str, ...] = ()

    def vocabulary(self) -> list[str]:
        """Ids 0, 1, ...: pad, bos, eos, unk, then the extra tokens (absent roles skipped)."""
        return [t for t in (self.pad, self.bos, self.eos, self.unk, *self.extra) if t]


LLAVA_SPECIALS = SpecialTokens(
    pad="<pad>", bos="<s>", eos="</s>", unk="<unk>", extra=(IMAGE_TOKEN,)
)


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, specials: SpecialTokens = LLAVA_SPECIALS
) -> Any:
    """Train byte-level BPE on ``texts``; return a ``transformers`` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = sorted({t for t in texts if t})
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials.vocabulary(),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return wrap(tok, specials)


def wrap(tok: Any, specials: SpecialTokens = LLAVA_SPECIALS) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=specials.bos,
        eos_token=specials.eos,
        pad_token=specials.pad,
        unk_token=specials.unk,
        extra_special_tokens=list(specials.extra),
        padding_side="left",
    )


def load_tokenizer(path: str, specials: SpecialTokens = LLAVA_SPECIALS) -> Any:
    from tokenizers import Tokenizer

    return wrap(Tokenizer.from_file(path), specials)
