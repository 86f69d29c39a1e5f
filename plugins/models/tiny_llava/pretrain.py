"""The tiny model's built-in "pretraining": image captioning on procedurally drawn scenes.

Real LLaVA starting points come with a pretrained vision encoder and projector; a randomly
initialised tiny model does not, and LoRA on a random base learns little in a few hundred steps.
This stage trains the whole tiny model (vision tower optional) to describe drawn scenes, once
per configuration, and is cached; it is the base model, not part of a continual run.

The scenes come from ``cvit_bench.plugins.benchmarks.synth_coin.pretraining_samples`` when the
synthetic benchmark provides it, else from :func:`fallback_samples` below.
"""

from __future__ import annotations

import math
import random
from typing import Any

from cvit_bench.harness import parallel
from cvit_bench.harness.types import Sample

from ..chat_adapter import IGNORE_INDEX

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 190),
    "orange": (240, 140, 30),
}
SHAPES = ("circle", "square", "triangle", "cross")
PLACES = ("top left", "top right", "bottom left", "bottom right")


def fallback_samples(n: int, seed: int, image_size: int) -> list[tuple[Any, str, str]]:
    """``n`` (image, prompt, caption) triples: one to three coloured shapes in the quadrants."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        img = Image.new("RGB", (image_size, image_size), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        places = rng.sample(range(4), rng.randint(1, 3))
        words = []
        half = image_size // 2
        for place in sorted(places):
            colour = rng.choice(list(COLOURS))
            shape = rng.choice(SHAPES)
            x0, y0 = (place % 2) * half, (place // 2) * half
            box = (x0 + half // 6, y0 + half // 6, x0 + half - half // 6, y0 + half - half // 6)
            fill = COLOURS[colour]
            if shape == "circle":
                draw.ellipse(box, fill=fill)
            elif shape == "square":
                draw.rectangle(box, fill=fill)
            elif shape == "triangle":
                draw.polygon(
                    [(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])],
                    fill=fill,
                )
            else:
                w = max(1, half // 8)
                cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
                draw.rectangle((box[0], cy - w, box[2], cy + w), fill=fill)
                draw.rectangle((cx - w, box[1], cx + w, box[3]), fill=fill)
            words.append(f"a {colour} {shape} at the {PLACES[place]}")
        out.append((img, "Describe the image.", " and ".join(words)))
    return out


def pretraining_items(n: int, seed: int, image_size: int) -> list[tuple[Any, str, str]]:
    """(PIL image, prompt, caption) triples from synth-coin's generator, or the fallback."""
    try:
        from cvit_bench.plugins.benchmarks.synth_coin.pretraining import pretraining_samples
    except ImportError:
        return fallback_samples(n, seed, image_size)
    out = []
    for item in pretraining_samples(n, seed, image_size):
        if isinstance(item, Sample):
            from PIL import Image

            with Image.open(item.image) as img:
                out.append((img.convert("RGB"), item.prompt, item.answer or ""))
        elif len(item) == 2:
            out.append((item[0], "Describe the image.", item[1]))
        else:
            out.append(tuple(item[:3]))
    return out


def pretrain(
    adapter: Any,
    items: list[tuple[Any, str, str]],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    train_vision: bool,
    microbatches: int = 1,
    workers: int = 1,
) -> list[float]:
    """Train ``adapter.model`` on captioning with AdamW + cosine; return the loss per step.

    Each batch is cut into ``microbatches`` consecutive parts whose gradients are added in order
    (each part's loss weighted by its share of the batch's answer tokens, so the sum is the
    batch's mean loss). ``workers`` processes compute the parts at once; the sum of two floats
    does not depend on which is added to which, and the parts are added in the same order
    either way, so the weights come out the same, bit for bit, for any number of workers."""
    import torch

    model = adapter.model
    samples = []
    for i, (image, prompt, caption) in enumerate(items):
        key = f"<pretrain:{seed}:{i}>"
        adapter._pixel_cache[key] = adapter.process_image(image)
        samples.append(Sample(id=i, task="pretrain", prompt=prompt, answer=caption, image=key))
    # each sample's tokens once, not once per step it is drawn in (a tenth of a step's time)
    encoded = [adapter.encode_train(sample, 512) for sample in samples]
    for name, param in model.named_parameters():
        vision = adapter.vision_module in name and not adapter.is_projector_param(name)
        param.requires_grad_(train_vision or not vision)
    params = [p for p in model.parameters() if p.requires_grad]
    microbatches = max(1, min(microbatches, batch_size))
    workers = max(1, min(workers, microbatches))

    # the tokens each sample's loss is averaged over: its labels but the first (the loss
    # predicts token t + 1 from token t)
    answer_tokens = [sum(1 for label in e[1][1:] if label != IGNORE_INDEX) for e in encoded]

    def part_loss(idx: list[int], total_tokens: int) -> Any:
        batch = adapter.collate_train(
            [samples[i] for i in idx], max_length=512, encoded=[encoded[i] for i in idx]
        )
        loss = adapter.forward(model, batch, "cpu", torch.float32).loss
        return loss * (sum(answer_tokens[i] for i in idx) / total_tokens)

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    rng = random.Random(seed)
    order: list[int] = []
    losses = []
    model.train()
    pool = None
    if workers > 1:

        def compute(job: tuple[list[int], int]) -> float:
            loss = part_loss(*job)
            loss.backward()
            return float(loss.detach())

        pool = parallel.GradientWorkers(
            workers,
            microbatches,
            params,
            compute,
            "pretraining",
            "model.pretrain_workers=1 pretrains in this process (the same weights)",
        )
    try:
        for _ in range(steps):
            if len(order) < batch_size:
                perm = list(range(len(samples)))
                rng.shuffle(perm)
                order += perm
            idx, order = order[:batch_size], order[batch_size:]
            parts = _split(idx, microbatches)
            total = sum(answer_tokens[i] for i in idx)
            optimizer.zero_grad(set_to_none=True)
            if pool is not None:
                pool.send([(part, total) for part in parts])
            step_loss = 0.0
            for k, part in enumerate(parts):
                if pool is None or pool.owner(k) == 0:
                    loss = part_loss(part, total)
                    loss.backward()
                    step_loss += float(loss.detach())
                else:
                    step_loss += pool.add_into(k)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(step_loss)
    finally:
        if pool is not None:
            pool.close()
    model.eval()
    for key in [k for k in adapter._pixel_cache if k.startswith("<pretrain:")]:
        del adapter._pixel_cache[key]
    for param in model.parameters():
        param.requires_grad_(False)
        param.grad = None
    return losses


def _split(idx: list[int], parts: int) -> list[list[int]]:
    """``idx`` in ``parts`` consecutive pieces, the first ones one longer when it does not divide."""
    size, extra = divmod(len(idx), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(idx[start:end])
        start = end
    return out
