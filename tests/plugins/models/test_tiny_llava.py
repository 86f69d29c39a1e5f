from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import torch
from tiny_helpers import build_tiny, supervised_pieces, train_briefly, weights

from cvit_bench.harness.errors import CvitError, UsageError
from cvit_bench.harness.types import Sample, Turn
from cvit_bench.plugins.models import tiny_common
from cvit_bench.plugins.models.llava_common import IGNORE_INDEX, IMAGE_TOKEN
from cvit_bench.plugins.models.tiny_llava.model import TinyLlava
from cvit_bench.testing.toy import ToyBenchmark


def build(tmp_path, bench=None, **config):
    return build_tiny(TinyLlava, tmp_path, bench, **config)


def test_same_seed_builds_the_same_model_and_tokenizer(tmp_path):
    a, _ = build(tmp_path / "a")
    b, _ = build(tmp_path / "b")
    c, _ = build(tmp_path / "c", seed=1)
    sa, sb, sc = weights(a), weights(b), weights(c)
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)
    assert a.tokenizer.backend_tokenizer.to_str() == b.tokenizer.backend_tokenizer.to_str()
    assert a.model.config.vision_feature_layer == -1
    assert a.image_seq_length == (32 // 8) ** 2
    params = a.describe()["parameters"]
    assert params["vision_tower"] > 0 and params["language_model"] > 0


def test_tokenizer_covers_the_benchmark_text_without_unknowns(tmp_path):
    model, ctx = build(tmp_path)
    tok = model.tokenizer
    for task in ctx.tasks:
        for sample in ctx.benchmark.eval_samples(task.name):
            ids = tok(f" {sample.answer}", add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids
            assert tok.decode(ids) == f" {sample.answer}"
            assert len(ids) == 1, "answer words seen in the corpus are single tokens"


def test_pretraining_is_cached_by_configuration(tmp_path, monkeypatch):
    first, _ = build(tmp_path, pretrain_steps=3, pretrain_samples=12, pretrain_batch=4)
    assert first.cache_path is not None and (first.cache_path / "model.safetensors").exists()
    assert first.pretrain_stats["steps"] == 3
    # nothing of the pretraining lingers: frozen weights, no stale gradients (DeepSpeed's
    # clipping would count those in the next training's gradient norm)
    assert all(p.grad is None and not p.requires_grad for p in first.model.parameters())

    def refuse(*args, **kwargs):
        raise AssertionError("pretraining ran again instead of loading the cache")

    monkeypatch.setattr(tiny_common, "pretrain", refuse)
    second, _ = build(tmp_path, pretrain_steps=3, pretrain_samples=12, pretrain_batch=4)
    assert second.cache_path == first.cache_path
    s1, s2 = weights(first), weights(second)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    random_base, _ = build(tmp_path / "r")
    assert any(not torch.equal(s1[k], weights(random_base)[k]) for k in s1)


SMALL_PRETRAINING = {"pretrain_steps": 4, "pretrain_samples": 12, "pretrain_batch": 6}


def test_pretraining_gives_the_same_base_in_one_process_or_several(tmp_path, monkeypatch):
    monkeypatch.setattr("cvit_bench.harness.parallel.usable_cpus", lambda: 2)
    monkeypatch.delenv("CVIT_BENCH_WORKERS", raising=False)
    torch.set_num_threads(2)
    try:
        # threads=0 leaves torch's two threads; pretraining runs on one and gives them back
        one, _ = build(tmp_path / "a", threads=0, pretrain_workers=1, **SMALL_PRETRAINING)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
    auto, _ = build(tmp_path / "b", **SMALL_PRETRAINING)
    assert one.pretrain_stats["workers"] == 1 and auto.pretrain_stats["workers"] == 2
    assert one.cache_path.name == auto.cache_path.name  # one base, wherever it was made
    s1, s2 = weights(one), weights(auto)
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert one.pretrain_stats["loss_last"] == auto.pretrain_stats["loss_last"]
    # more parts than processes add up the same way too: three over two (this process does
    # parts 0 and 2 around the worker's 1) and four over two (the worker does 1 and 3, and is
    # done with both before this slowed-down process reads part 1's gradient)
    parent, forward = os.getpid(), TinyLlava.forward

    def slow_here(self, *args, **kwargs):
        if os.getpid() == parent:
            time.sleep(0.2)
        return forward(self, *args, **kwargs)

    for parts in (3, 4):
        cut = {**SMALL_PRETRAINING, "pretrain_microbatches": parts}
        a, _ = build(tmp_path / f"c{parts}", pretrain_workers=1, **cut)
        with monkeypatch.context() as patch:
            patch.setattr(TinyLlava, "forward", slow_here)
            b, _ = build(tmp_path / f"d{parts}", pretrain_workers=2, **cut)
        assert b.pretrain_stats["workers"] == 2
        sa, sb = weights(a), weights(b)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), f"{parts} parts"
        assert a.cache_path.name != one.cache_path.name  # cut in other parts: another base
        assert any(not torch.equal(sa[k], s1[k]) for k in sa)
    # CVIT_BENCH_WORKERS caps the processes of a run that leaves the choice to the machine
    monkeypatch.setenv("CVIT_BENCH_WORKERS", "1")
    capped, _ = build(tmp_path / "e", **SMALL_PRETRAINING)
    assert capped.pretrain_stats["workers"] == 1
    # and a platform that cannot fork pretrains in one process unless told otherwise
    monkeypatch.delenv("CVIT_BENCH_WORKERS")
    monkeypatch.setattr("cvit_bench.harness.parallel.can_fork", lambda: False)
    unforked, _ = build(tmp_path / "f", **SMALL_PRETRAINING)
    assert unforked.pretrain_stats["workers"] == 1
    with pytest.raises(CvitError, match="needs the 'fork' start method.*pretrain_workers=1"):
        build(tmp_path / "g", pretrain_workers=2, **SMALL_PRETRAINING)


def test_bad_pretraining_options_are_refused_before_any_work(tmp_path):
    with pytest.raises(UsageError, match="pretrain_workers must be 0"):
        build(tmp_path, pretrain_workers=-1, **SMALL_PRETRAINING)
    with pytest.raises(UsageError, match="pretrain_microbatches must be 1 or more"):
        build(tmp_path, pretrain_microbatches=0, **SMALL_PRETRAINING)
    assert not (tmp_path / "cache" / "tiny-llava").exists()


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_failing_pretraining_worker_stops_pretraining_with_what_happened(
    tmp_path, monkeypatch, how
):
    parent = os.getpid()
    forward = TinyLlava.forward

    def failing(self, *args, **kwargs):
        if os.getpid() != parent:
            if how == "dies":
                os._exit(7)
            raise RuntimeError("the worker's forward pass broke")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(TinyLlava, "forward", failing)
    expected = "worker process 1 died \\(exit code 7\\)" if how == "dies" else "forward pass broke"
    with pytest.raises(CvitError, match=expected) as caught:
        build(tmp_path, pretrain_workers=2, **SMALL_PRETRAINING)
    if how == "dies":
        assert "pretrain_workers=1" in str(caught.value)
    assert multiprocessing.active_children() == []  # no worker left behind
    cached = tmp_path / "cache" / "tiny-llava"
    assert not list(cached.glob("*/model.safetensors"))  # no half-made base in the cache


def test_remembered_token_ids_are_the_tokenizers_and_follow_a_new_tokenizer(tmp_path, monkeypatch):
    model, ctx = build(tmp_path)
    sample = ctx.benchmark.train_samples("colour")[0]
    first = model.encode_prompt(sample)
    calls = []
    real = type(model.tokenizer).__call__

    def counted(self, *args, **kwargs):
        calls.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(model.tokenizer), "__call__", counted)
    again = model.encode_prompt(sample)
    assert again == first and calls == []  # remembered, not tokenised again
    again.append(-1)  # a caller's list is its own
    assert model.encode_prompt(sample) == first
    expected = model._prefix() + list(
        real(
            model.tokenizer,
            model.template.render(sample).replace(IMAGE_TOKEN, model.image_text(sample)),
            add_special_tokens=False,
        )["input_ids"]
    )
    assert first == expected
    # another tokenizer (another benchmark's, say) is asked afresh
    other, _ = build(tmp_path / "other", vocab_size=300)
    model.tokenizer = other.tokenizer
    assert model.encode_prompt(sample) != first and len(calls) == 1


def test_loss_covers_only_answer_tokens_and_eos(tmp_path):
    model, ctx = build(tmp_path)
    tok = model.tokenizer
    sample = ctx.benchmark.train_samples("colour")[0]
    batch = model.collate_train([sample, ctx.benchmark.train_samples("place")[0]], 512)
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    answer = [t for t, lab in zip(ids, labels) if lab != IGNORE_INDEX]
    assert tok.decode(answer) == f" {sample.answer}</s>"
    assert answer[-1] == tok.eos_token_id
    # the supervised tokens are the last ones; the prompt is exactly the generation prompt
    n_prompt = labels.index(next(lab for lab in labels if lab != IGNORE_INDEX))
    assert ids[:n_prompt] == model.encode_prompt(sample)
    assert ids.count(tok.convert_tokens_to_ids(IMAGE_TOKEN)) == model.image_seq_length
    # right padding in training is never supervised
    pad_rows = batch["attention_mask"] == 0
    assert (batch["labels"][pad_rows] == IGNORE_INDEX).all()


def test_every_answer_of_a_multi_turn_sample_is_supervised(tmp_path):
    model, ctx = build(tmp_path)
    image = ctx.benchmark.train_samples("colour")[0].image
    sample = Sample(
        id=1,
        task="colour",
        prompt="What colour is the square?",
        answer="red",
        image=image,
        turns=(
            Turn("What colour is the square?", "red"),
            Turn("Is the square on the left?", "left"),
        ),
    )
    ids, labels = model.encode_train(sample, 512)
    assert supervised_pieces(model, ids, labels) == [" red</s>", " left</s>"]
    text = model.tokenizer.decode(ids)
    assert "</s>USER: Is the square on the left? ASSISTANT: left</s>" in text


def test_vicuna_template_and_pad_to_square(tmp_path):
    from PIL import Image

    model, ctx = build(tmp_path, system_prompt="A chat.")
    sample = ctx.benchmark.eval_samples("colour")[0]
    assert model.template.render(sample) == (
        f"A chat. USER: {IMAGE_TOKEN}\n{sample.prompt} ASSISTANT:"
    )
    wide = tmp_path / "wide.png"
    Image.new("RGB", (64, 32), (255, 0, 0)).save(wide)
    pixels = model.pixel_values(str(wide))
    assert tuple(pixels.shape) == (3, 32, 32)
    # padded rows (top and bottom) hold the CLIP mean colour, normalised to about zero
    assert pixels[:, 0, :].abs().max() < 0.05
    assert pixels[0, 16, 16] > 1.0  # the red image in the middle


@pytest.mark.slow
def test_batched_generation_equals_one_at_a_time_on_a_trained_model(tmp_path, monkeypatch):
    torch.manual_seed(0)
    bench = ToyBenchmark(n_train=96, n_eval=16)
    model, ctx = build(tmp_path, bench=bench)
    train_briefly(model, list(bench.train_samples("colour")))
    # interleave the two tasks so every batch mixes prompt lengths (left padding at work)
    evals = [
        s for pair in zip(bench.eval_samples("colour"), bench.eval_samples("place")) for s in pair
    ]
    assert len({len(model.encode_prompt(s)) for s in evals}) > 1
    one = [
        model.generate(model.model, model.collate_eval([s]), 4, "cpu", torch.float32)[0]
        for s in evals
    ]
    batched = []
    for start in range(0, len(evals), 8):
        batch = model.collate_eval(evals[start : start + 8])
        assert (batch["attention_mask"] == 0).any()
        batched += model.generate(model.model, batch, 4, "cpu", torch.float32)
    assert batched == one
    correct = sum(p == s.answer for p, s in zip(one, evals) if s.task == "colour")
    assert correct >= 12, f"the model did not learn colours ({correct}/16): {one}"
    # the engine's sharded, length-sorted evaluation gives the same answers in input order
    ctx.config.eval.batch_size = 5
    preds = model.create_engine(ctx).predict(ctx, ctx.tasks[0], evals)
    assert [p.id for p in preds] == [s.id for s in evals]
    assert [p.text for p in preds] == one
    # one CPU process hands every other batch to a forked copy of itself: the same answers
    generate = TinyLlava.generate

    def tagged(self, *args, **kwargs):
        return [f"{os.getpid()}|{text}" for text in generate(self, *args, **kwargs)]

    monkeypatch.setattr(TinyLlava, "generate", tagged)
    monkeypatch.setattr("cvit_bench.harness.parallel.usable_cpus", lambda: 2)
    monkeypatch.delenv("CVIT_BENCH_WORKERS", raising=False)
    engine = model.create_engine(ctx)
    forked = [p.text.split("|", 1) for p in engine.predict(ctx, ctx.tasks[0], evals)]
    assert {pid for pid, _ in forked} == {str(os.getpid()), forked[1][0]} != {str(os.getpid())}
    assert [text for _, text in forked] == one
    monkeypatch.setenv("CVIT_BENCH_WORKERS", "1")
    alone = [p.text.split("|", 1) for p in engine.predict(ctx, ctx.tasks[0], evals)]
    assert alone == [[str(os.getpid()), text] for text in one]
