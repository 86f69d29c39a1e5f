"""Does tiny-llava learn each synth-coin task from the image?

For each task separately: start from the (cached, caption-pretrained) tiny-llava base, add a
fresh LoRA adapter as ``seqlora`` does (or fine-tune everything with ``--full``), train on the
task's training items, then score the test items with the benchmark's scorer twice: with the
real images and with every image replaced by one blank grey image. Prints per task: chance,
majority-answer score, trained score and blank-image score (mean and spread over seeds).

    python scripts/synth_coin_tiny_llava_check.py --steps 125 --batch 8 --lr 2e-3 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from cvit_bench.harness.config import apply_override, build_dataclass
from cvit_bench.harness.types import Prediction
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.methods import lora_common
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava, TinyLlavaConfig
from cvit_bench.testing.toy import make_context


def evaluate(adapter, model, samples, max_new_tokens: int, batch: int = 50) -> list[str]:
    model.eval()
    texts: list[str] = []
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        texts += adapter.generate(
            model, adapter.collate_eval(chunk), max_new_tokens, "cpu", torch.float32
        )
    return texts


def train_task(adapter, base, samples, args, seed: int):
    model = copy.deepcopy(base)
    if args.full:
        for param in model.parameters():
            param.requires_grad_(True)
    else:
        config = lora_common.lora_config(
            args.rank, 2.0 * args.rank, 0.0, adapter.lora_targets(), train_projector=args.projector
        )
        model = lora_common.add_lora(model, config, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 30)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (
            min(1.0, (s + 1) / warmup)
            * 0.5
            * (1 + torch.cos(torch.tensor(torch.pi * s / args.steps)).item())
        ),
    )
    rng = random.Random(seed)
    order: list[int] = []
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(args.steps):
        if len(order) < args.batch:
            perm = list(range(len(samples)))
            rng.shuffle(perm)
            order += perm
        index, order = order[: args.batch], order[args.batch :]
        batch = adapter.collate_train([samples[i] for i in index], max_length=512)
        loss = adapter.forward(model, batch, "cpu", torch.float32).loss
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
    return model, float(loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=125)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--full", action="store_true", help="fine-tune every weight, no LoRA")
    parser.add_argument(
        "--projector", action="store_true", help="train the projector beside the LoRA adapter"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", nargs="*")
    parser.add_argument("--cache", type=Path, default=None, help="cache folder (default: temp)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a tiny-llava option (e.g. pretrain_steps=1200); repeatable",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench = SynthCoin({})
        options: dict[str, Any] = {}
        for item in args.model_arg:
            apply_override(options, item)
        adapter = TinyLlava(build_dataclass(TinyLlavaConfig, options, "model"))
        ctx = make_context(root, bench, adapter)
        if args.cache is not None:
            ctx = dataclasses.replace(ctx, cache_dir=args.cache)
        start = time.perf_counter()
        bench.prepare(ctx)
        adapter.build(ctx)
        print(
            f"data + base model ready in {time.perf_counter() - start:.0f} s "
            f"(pretraining: {adapter.pretrain_stats})"
        )
        base = adapter.model
        blank = root / "blank.png"
        Image.new("RGB", (bench.config.image_size,) * 2, (128, 128, 128)).save(blank)
        how = "full fine-tuning" if args.full else f"LoRA r{args.rank}"
        if args.projector and not args.full:
            how += " + projector"
        print(f"{how}, {args.steps} steps x batch {args.batch}, lr {args.lr}, seeds {args.seeds}")
        print(
            f"{'task':<10} {'chance':>6} {'major.':>6} {'zero-shot':>9} {'trained':>14} "
            f"{'blank':>14}"
        )
        for info in bench.tasks():
            if args.tasks and info.name not in args.tasks:
                continue
            started = time.perf_counter()
            train, test = list(bench.train_samples(info.name)), list(bench.eval_samples(info.name))
            blanks = [dataclasses.replace(s, image=str(blank)) for s in test]
            baselines = bench.baselines(info.name)

            def score(texts, test=test, name=info.name):
                predictions = [Prediction(id=s.id, text=t) for s, t in zip(test, texts)]
                return bench.score(name, predictions, test).value

            zero_shot = score(evaluate(adapter, base, test, info.max_new_tokens))
            results = []
            for seed in args.seeds:
                model, _ = train_task(adapter, base, train, args, seed)
                results.append(
                    (
                        score(evaluate(adapter, model, test, info.max_new_tokens)),
                        score(evaluate(adapter, model, blanks, info.max_new_tokens)),
                    )
                )
            cells = []
            for column in zip(*results):
                spread = statistics.pstdev(column) if len(column) > 1 else 0.0
                cells.append(f"{statistics.mean(column):6.1f} +- {spread:4.1f}")
            print(
                f"{info.name:<10} {baselines['chance']:6.1f} {baselines['majority']:6.1f} "
                f"{zero_shot:9.1f} {cells[0]:>14} {cells[1]:>14}  "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
