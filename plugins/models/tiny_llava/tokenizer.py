"""A byte-level BPE tokenizer trained offline on the benchmark's own text.

Byte-level BPE can spell any string (every byte is in the base alphabet), so an answer the
model never saw is still representable, and decoding reproduces the text exactly. The
training corpus is de-duplicated and sorted, so the same texts give the same tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cvit_bench.plugins.models.llava_common import IMAGE_TOKEN

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """Train byte-level BPE on ``texts``; return a ``transformers`` fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    corpus = sorted({t for t in texts if t})
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=1,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    return wrap(tok)


def wrap(tok: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=[IMAGE_TOKEN],
        padding_side="left",
    )


def load_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    return wrap(Tokenizer.from_file(path))
