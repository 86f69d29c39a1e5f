"""Is each synth-coin task learnable from the image, and not from answer priors?

Trains a small pure-PyTorch model (a CNN over the image, the question's tokens by position,
fused by concatenation and product) to pick one of the answers seen in training (Grounding
too: its box strings are few, since shapes nearly fill their grid cell), on each task
separately for a fixed number of steps, then
scores it with the benchmark's own scorer on the test split, once with the real images and once
with every image replaced by a blank grey one. Prints, per task: chance, majority-answer score,
best constant answer, question-only score, trained accuracy and blank-image accuracy (mean and
spread over the model seeds).

This is a check of the data, not of a LLaVA: a CNN sees pixels more directly than a
patch-8 vision transformer does, so its scores are an optimistic bound for a tiny LLaVA.

    python scripts/synth_coin_learnability.py --steps 150 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from cvit_bench.harness.types import Prediction
from cvit_bench.plugins.benchmarks.synth_coin.benchmark import SynthCoin
from cvit_bench.plugins.benchmarks.synth_coin.generate import SynthSettings, generate

MAX_TOKENS = 48


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


class Net(nn.Module):
    def __init__(self, vocab: int, outputs: int, size: int, width: int = 64) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * (size // 4) ** 2, width),
            nn.ReLU(),
        )
        self.embed = nn.Embedding(vocab, 16, padding_idx=0)
        self.question = nn.Sequential(nn.Flatten(), nn.Linear(16 * MAX_TOKENS, width), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(3 * width, width), nn.ReLU(), nn.Linear(width, outputs))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        image = self.cnn(images)
        question = self.question(self.embed(tokens))
        return self.head(torch.cat([image, question, image * question], dim=-1))


def load_images(samples) -> torch.Tensor:
    arrays = [np.asarray(Image.open(s.image).convert("RGB"), dtype=np.float32) for s in samples]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 127.5 - 1.0


def encode(samples, vocab: dict[str, int]) -> torch.Tensor:
    rows = []
    for s in samples:
        ids = [vocab.get(t, 1) for t in tokenize(s.prompt)][:MAX_TOKENS]
        rows.append(ids + [0] * (MAX_TOKENS - len(ids)))
    return torch.tensor(rows)


def parse_box(text: str) -> list[float]:
    return [float(v) for v in text.strip("[]").split(",")]


def run_task(
    bench: SynthCoin,
    task: str,
    steps: int,
    seed: int,
    batch: int,
    lr: float,
    regress_boxes: bool = False,
):
    train, test = bench.train_samples(task), bench.eval_samples(task)
    vocab = {"<pad>": 0, "<unk>": 1}
    for s in train:
        for t in tokenize(s.prompt):
            vocab.setdefault(t, len(vocab))
    grounding = task == "Grounding" and regress_boxes
    answers = sorted({s.answer for s in train})
    if grounding:
        targets = torch.tensor([parse_box(s.answer) for s in train])
    else:
        targets = torch.tensor([answers.index(s.answer) for s in train])
    images, tokens = load_images(train), encode(train, vocab)
    torch.manual_seed(seed)
    size = images.shape[-1]
    net = Net(len(vocab), 4 if grounding else len(answers), size)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(len(train), (batch,), generator=generator)
        out = net(images[index], tokens[index])
        if grounding:
            loss = nn.functional.l1_loss(torch.sigmoid(out), targets[index])
        else:
            loss = nn.functional.cross_entropy(out, targets[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    test_images, test_tokens = load_images(test), encode(test, vocab)
    scores = {}
    for name, pixels in (("trained", test_images), ("blank", torch.zeros_like(test_images))):
        with torch.no_grad():
            out = net(pixels, test_tokens)
        if grounding:
            boxes = torch.sigmoid(out).tolist()
            texts = ["[" + ", ".join(f"{v:.2f}" for v in box) + "]" for box in boxes]
        else:
            texts = [answers[i] for i in out.argmax(-1).tolist()]
        predictions = [Prediction(id=s.id, text=t) for s, t in zip(test, texts)]
        scores[name] = bench.score(task, predictions, test).value
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root",
        type=Path,
        help="existing synth-coin data (default: generate into a temporary folder)",
    )
    parser.add_argument("--train", type=int, default=SynthSettings().train_per_task)
    parser.add_argument("--eval", type=int, default=SynthSettings().eval_per_task)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="*")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--regress-boxes",
        action="store_true",
        help="Grounding: regress the four coordinates instead of classifying "
        "over the box strings seen in training",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data_root
        if root is None:
            root = generate(
                Path(tmp) / "data",
                SynthSettings(
                    seed=args.data_seed,
                    train_per_task=args.train,
                    eval_per_task=args.eval,
                    image_size=args.image_size,
                ),
            )
        bench = SynthCoin({"data_root": str(root)})
        bench.prepare(None)
        header = (
            f"{'task':<10} {'chance':>6} {'major.':>6} {'const.':>6} {'q-only':>6} "
            f"{'trained':>14} {'blank':>14}"
        )
        print(
            f"{args.steps} steps x batch {args.batch}, lr {args.lr}, seeds {args.seeds}, "
            f"{len(bench.train_samples('GQA'))} train / {len(bench.eval_samples('GQA'))} test "
            f"per task, {args.image_size}px"
        )
        print(header)
        for info in bench.tasks():
            if args.tasks and info.name not in args.tasks:
                continue
            start = time.perf_counter()
            base = bench.baselines(info.name)
            runs = [
                run_task(bench, info.name, args.steps, s, args.batch, args.lr, args.regress_boxes)
                for s in args.seeds
            ]
            cells = []
            for key in ("trained", "blank"):
                values = [r[key] for r in runs]
                spread = statistics.pstdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):6.1f} +- {spread:4.1f}")
            print(
                f"{info.name:<10} {base['chance']:6.1f} {base['majority']:6.1f} "
                f"{base['best_constant']:6.1f} {base['question_only']:6.1f} "
                f"{cells[0]:>14} {cells[1]:>14}  ({time.perf_counter() - start:.0f} s)"
            )


if __name__ == "__main__":
    main()
