"""The lmms-eval model ``cvit_bench``: one stage of a cvit-bench run, answering lmms-eval tasks.

From lmms-eval's command line it loads a stage of a run directory::

    python -m lmms_eval --model cvit_bench --model_args run_dir=runs/x,stage=3 --tasks mme

and inside a run the runner wraps the model it holds in memory (:meth:`CvitBenchLMM.in_memory`).
Either way a request is answered through the run's engine (``engine.predict``): the run's chat
template, greedy batched generation, and the method's inference routing around every batch,
exactly as the accuracy matrix was produced.

Only ``generate_until`` tasks are answered (cvit-bench scores generated text); a task asking for
log-likelihoods or multi-round generation is refused with a message saying so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms

from cvit_bench.harness.types import Sample, TaskInfo

DEFAULT_MAX_NEW_TOKENS = 128
"""The generation budget of a task whose ``generation_kwargs`` give no ``max_new_tokens``."""


class CvitBenchLMM(lmms):
    """lmms-eval's ``lmms`` over a cvit-bench run's model after one stage.

    ``model_args``: ``run_dir`` (required) and ``stage`` (default: the run's last finished
    stage; 0 is the untrained model). lmms-eval's ``--batch_size`` sets the generation batch
    (batched answers equal one-at-a-time answers).
    """

    is_simple = True

    def __init__(
        self,
        run_dir: str | None = None,
        stage: int | str | None = None,
        batch_size: int | str | None = None,
        **_ignored: Any,
    ) -> None:
        super().__init__()
        if run_dir is None:
            raise ValueError(
                "the cvit_bench model needs model_args run_dir=<a cvit-bench run directory> "
                "(and optionally stage=<N>)"
            )
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError(
                "the cvit_bench model runs in one process: start lmms-eval with "
                "'python -m lmms_eval ...', not through accelerate or torchrun"
            )
        from cvit_bench.harness.stage_loader import load_stage

        loaded = load_stage(run_dir, None if stage in (None, "") else int(stage))
        ctx = loaded.ctx
        ctx.stage = loaded.stage
        engine = ctx.extras.get("engine") or loaded.model.create_engine(ctx)
        ctx.extras["engine"] = engine
        self._setup(ctx, engine, _batch_size(batch_size))

    @classmethod
    def in_memory(cls, ctx: Any, engine: Any) -> CvitBenchLMM:
        """Wrap the model a run holds (``ctx.method`` set, ``engine`` its engine)."""
        self = cls.__new__(cls)
        lmms.__init__(self)
        self._setup(ctx, engine, None)
        return self

    def _setup(self, ctx: Any, engine: Any, batch_size: int | None) -> None:
        config = ctx.config
        # the run's eval.max_new_tokens shortens the benchmark's answers; lmms-eval tasks keep
        # their own budgets
        eval_config = dataclasses.replace(
            config.eval,
            max_new_tokens=None,
            batch_size=batch_size or config.eval.batch_size,
        )
        self._ctx = dataclasses.replace(ctx, config=dataclasses.replace(config, eval=eval_config))
        self._engine = engine
        self._image_dir = Path(tempfile.mkdtemp(prefix="cvit-bench-lmms-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._image_dir, True)
        self.stage = ctx.stage

    @property
    def batch_size(self) -> int:
        return int(self._ctx.config.eval.batch_size)

    @property
    def device(self) -> Any:
        """Where the model's parameters are (lmms-eval puts tensors there)."""
        model = getattr(self._ctx.model, "model", None)
        first = next(iter(model.parameters()), None) if model is not None else None
        return first.device if first is not None else "cpu"

    # -- lmms-eval's requests ---------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        groups: dict[tuple[str, int], list[tuple[int, Sample, list[str]]]] = {}
        for i, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            kwargs = dict(gen_kwargs or {})
            until = kwargs.get("until") or []
            if isinstance(until, str):
                until = [until]
            max_new = int(kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS)
            visuals = _flatten(doc_to_visual(self.task_dict[task][split][doc_id]))
            sample = Sample(
                id=i,
                task=task,
                prompt=str(context),
                image=self._image_file(visuals, task, doc_id),
            )
            groups.setdefault((task, max_new), []).append((i, sample, [u for u in until if u]))
        answers: list[str] = [""] * len(requests)
        added: list[str] = []
        try:
            for (task, max_new), items in groups.items():
                info = TaskInfo(name=task, max_new_tokens=max_new)
                samples = [sample for _, sample, _ in items]
                added += [s.image for s in samples if s.image]
                predictions = self._engine.predict(self._ctx, info, samples)
                for (i, _, until), prediction in zip(items, predictions):
                    answers[i] = _cut(prediction.text, until)
        finally:
            # the adapter caches processed images by path; these files are one evaluation's
            cache = getattr(self._ctx.model, "_pixel_cache", None)
            if isinstance(cache, dict):
                for path in added:
                    cache.pop(path, None)
        return answers

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        task = requests[0].task_name if requests else "?"
        raise NotImplementedError(
            f"lmms-eval task {task!r} asks for log-likelihoods; the cvit_bench model answers "
            "generate_until tasks only (it is scored on generated text, as in the run)"
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        task = requests[0].task_name if requests else "?"
        raise NotImplementedError(
            f"lmms-eval task {task!r} asks for multi-round generation; the cvit_bench model "
            "answers single-turn generate_until tasks only"
        )

    # -- images -------------------------------------------------------------------------------
    def _image_file(self, visuals: list[Any], task: str, doc_id: Any) -> str | None:
        """The request's image as a PNG file (cvit-bench samples name their image by path);
        the file is named by its pixels, so equal images share one file."""
        if not visuals:
            return None
        from PIL import Image

        if len(visuals) > 1 or not isinstance(visuals[0], Image.Image):
            kinds = sorted({type(v).__name__ for v in visuals})
            raise ValueError(
                f"lmms-eval task {task!r}, document {doc_id}: the cvit_bench model takes one "
                f"image per question, got {len(visuals)} visual(s) of type {', '.join(kinds)}"
            )
        image = visuals[0].convert("RGB")
        digest = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()[:32]
        path = self._image_dir / f"{digest}.png"
        if not path.exists():
            tmp = path.with_suffix(".tmp.png")
            image.save(tmp, format="PNG")
            tmp.replace(path)
        return str(path)


def _flatten(visuals: Any) -> list[Any]:
    if visuals is None:
        return []
    if not isinstance(visuals, (list, tuple)):
        return [visuals]
    out: list[Any] = []
    for item in visuals:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return [v for v in out if v is not None]


def _cut(text: str, until: list[str]) -> str:
    """``text`` up to the first of the task's stop strings."""
    end = len(text)
    for stop in until:
        at = text.find(stop)
        if at != -1:
            end = min(end, at)
    return text[:end]


def _batch_size(value: int | str | None) -> int | None:
    """lmms-eval passes its ``--batch_size`` (1 unless given, or ``auto``): a number is used."""
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
