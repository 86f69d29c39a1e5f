"""Helpers the tiny-model tests share: build on the toy benchmark, train, read supervision."""

from __future__ import annotations

import random
from typing import Any

import torch

from cvit_bench.plugins.models.chat_adapter import IGNORE_INDEX
from cvit_bench.testing.toy import ToyBenchmark, make_context


def build_tiny(model_cls: type, tmp_path: Any, bench: Any = None, **config: Any) -> tuple:
    """A tiny model (random base unless ``pretrain_steps`` is given) built on ``bench``."""
    bench = bench or ToyBenchmark(n_train=16, n_eval=8)
    model = model_cls(model_cls.config_class(**{"pretrain_steps": 0, **config}))
    ctx = make_context(tmp_path, bench, model)
    bench.prepare(ctx)
    model.build(ctx)
    return model, ctx


def weights(model: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.model.state_dict().items()}


def supervised_pieces(model: Any, ids: list[int], labels: list[int]) -> list[str]:
    """The decoded runs of supervised tokens, in order."""
    pieces, current = [], []
    for t, lab in zip(ids, labels):
        if lab == IGNORE_INDEX and current:
            pieces.append(current)
            current = []
        elif lab != IGNORE_INDEX:
            current.append(t)
    pieces.append(current)
    return [model.tokenizer.decode(p) for p in pieces]


def train_briefly(model: Any, samples: list, steps: int = 30, lr: float = 1e-3) -> None:
    """Full fine-tuning on ``samples`` in batches of 16, then frozen again."""
    model.model.train()
    for p in model.model.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(model.model.parameters(), lr=lr)
    rng = random.Random(0)
    for _ in range(steps):
        batch = model.collate_train(rng.sample(samples, 16), 512)
        loss = model.forward(model.model, batch, "cpu", torch.float32).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.model.eval()
    for p in model.model.parameters():
        p.requires_grad_(False)
