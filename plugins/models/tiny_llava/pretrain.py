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
from cvit_bench.harness.errors import CvitError
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
    pool = _PartWorkers(workers, microbatches, params, part_loss) if workers > 1 else None
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
                pool.send(parts, total)
            step_loss = 0.0
            for k, part in enumerate(parts):
                if pool is None or k % workers == 0:
                    loss = part_loss(part, total)
                    loss.backward()
                    step_loss += float(loss.detach())
                else:
                    step_loss += pool.add_into(k, params)
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


class _PartWorkers:
    """Forked processes that compute the gradients of some of each step's batch parts.

    The parameters live in shared memory, so a worker always sees the weights the last optimizer
    step left; part ``k`` of a step goes to worker ``k % n`` (part 0, and every n-th, stays in
    this process). A worker writes part ``k``'s gradient into part ``k``'s shared buffer (a
    worker with several parts goes on to the next while this process still reads the last) and
    reports the part's loss; :meth:`add_into` adds that buffer to the parameters' gradients."""

    def __init__(self, n: int, parts: int, params: list[Any], part_loss: Any) -> None:
        import multiprocessing

        import torch

        if not parallel.can_fork():
            raise CvitError(
                "pretraining in several processes needs the 'fork' start method, which this "
                "platform lacks; set model.pretrain_workers=1 (the same weights, in one process)"
            )
        for param in params:
            param.data.share_memory_()
        self.sizes = [p.numel() for p in params]
        total = sum(self.sizes)
        context = multiprocessing.get_context("fork")
        self.buffers = {
            k: torch.zeros(total, dtype=torch.float32).share_memory_()
            for k in range(parts)
            if k % n
        }
        self.pipes = []
        self.procs = []
        for w in range(1, n):
            parent_end, child_end = context.Pipe()
            proc = context.Process(
                target=_part_worker,
                args=(child_end, self.buffers, params, part_loss),
                name=f"cvit-bench-pretrain-{w}",
                daemon=True,
            )
            proc.start()
            child_end.close()
            self.pipes.append(parent_end)
            self.procs.append(proc)
        self.n = n

    def send(self, parts: list[list[int]], total: int) -> None:
        for w, pipe in enumerate(self.pipes, start=1):
            pipe.send([(k, part, total) for k, part in enumerate(parts) if k % self.n == w])

    def add_into(self, k: int, params: list[Any]) -> float:
        """Wait for part ``k``, add its gradient to ``params``' and return its loss."""
        w = k % self.n
        try:
            reply = self.pipes[w - 1].recv()
        except (EOFError, OSError) as exc:
            code = self.procs[w - 1].exitcode
            raise CvitError(
                f"pretraining worker process {w} died (exit code {code}); was it killed, or out "
                "of memory? model.pretrain_workers=1 pretrains in this process (same weights)"
            ) from exc
        if reply[0] == "error":
            raise CvitError(f"pretraining worker process {w} failed:\n{reply[1]}")
        _, got, loss, has_grad = reply
        assert got == k, (got, k)
        offset = 0
        buffer = self.buffers[k]
        for param, size, has in zip(params, self.sizes, has_grad):
            if has:
                grad = buffer[offset : offset + size].view_as(param)
                if param.grad is None:
                    param.grad = grad.clone()
                else:
                    param.grad.add_(grad)
            offset += size
        return loss

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self.pipes:
            pipe.close()


def _part_worker(pipe: Any, buffers: dict[int, Any], params: list[Any], part_loss: Any) -> None:
    import traceback

    import torch

    parallel.ignore_sigint()  # the parent handles Ctrl-C and stops us
    torch.set_num_threads(1)
    sizes = [p.numel() for p in params]
    while True:
        try:
            jobs = pipe.recv()
        except EOFError:
            return
        if jobs is None:
            return
        for k, part, total in jobs:
            try:
                for param in params:
                    param.grad = None
                loss = part_loss(part, total)
                loss.backward()
                has_grad = []
                offset = 0
                for param, size in zip(params, sizes):
                    has_grad.append(param.grad is not None)
                    if param.grad is not None:
                        buffers[k][offset : offset + size].copy_(param.grad.reshape(-1))
                    offset += size
                pipe.send(("part", k, float(loss.detach()), has_grad))
            except BaseException:
                pipe.send(("error", traceback.format_exc()))
                return
