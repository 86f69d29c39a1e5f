"""Load a finished stage of a run directory into memory and ask it questions.

::

    from cvit_bench.harness.stage_loader import load_stage

    stage = load_stage("runs/synth-coin/seqlora-tiny-llava-seed0")       # the last finished stage
    stage.answer("What colour is the shape?", image="img.png")
    stage.generate([Sample(id=1, task="q", prompt="...", image="img.png")], max_new_tokens=16)
    stage.predict("colour")            # a task's evaluation, as the run scored it

The run is rebuilt the way the runner resumes one (:meth:`Runner.build` and
:meth:`Runner.restore`): the configuration recorded in ``run.json``, the same plugins, the
benchmark prepared, the model built, the method set up and, for stage ``s >= 1``, the method's
checkpoint of stage ``s`` loaded. Stage 0 is the untrained model (the method set up, nothing
loaded). Answers are greedy and go through the method's inference routing
(:meth:`Method.inference`) and the model's own chat template, exactly as evaluation does, so
on the same hardware they equal the predictions the run stored.

Model adapters provide the members evaluation uses (``collate_eval``, ``generate``); the
multi-turn ``collate_chat``/``render_chat`` and ``generate(..., streamer=)`` are optional (see
``docs/plugin-guide.md``): without them only single questions can be asked and answers arrive
whole.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .capabilities import accepts_keyword
from .errors import CvitError, RunDirError, UsageError
from .protocols import RunContext, iter_batches
from .types import Prediction, Sample, TaskInfo, Turn

DEFAULT_MAX_NEW_TOKENS = 256
"""Generation budget of :meth:`LoadedStage.answer` when the run sets no ``eval.max_new_tokens``."""


def read_run_info(run_dir: str | Path) -> dict[str, Any]:
    """``run.json`` of ``run_dir``; ``RunDirError`` when it is not a run directory or the file is
    corrupt."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such directory")
    path = run_dir / "run.json"
    if not path.exists():
        raise RunDirError(f"{run_dir}: not a cvit-bench run directory (no run.json)")
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path} is corrupt: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise RunDirError(f"{path} is corrupt: it records no run configuration")
    return info


def finished_stages(run_dir: str | Path) -> list[int]:
    """The stages of ``run_dir`` whose results and checkpoint were committed."""
    return sorted(int(s) for s in read_run_info(run_dir).get("finished_stages", []))


def load_stage(
    run_dir: str | Path,
    stage: int | None = None,
    *,
    manager: Any = None,
    cache_dir: str | Path | None = None,
    data_root: str | None = None,
) -> LoadedStage:
    """Rebuild the model of ``run_dir`` as it was after ``stage``.

    Args:
        run_dir: a run directory (``cvit-bench run --out``).
        stage: 0 for the untrained model, ``t`` for the model after training stage ``t``;
            default the last finished stage.
        manager: the plugin manager (default: the installed plugins).
        cache_dir: where the run's reusable artefacts are (default: the run's own setting).
        data_root: the benchmark's data when it has moved since the run.

    Raises:
        RunDirError: not a run directory, a corrupt ``run.json``, a stage that is not finished
            (the message names the finished ones), a missing or unreadable checkpoint.
        UnknownNameError, PluginLoadError: a plugin the run used is not installed or broken.
    """
    import dataclasses

    from .config import RunConfig, build_dataclass
    from .plugins import get_plugin_manager
    from .runner import Runner

    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    finished = sorted(int(s) for s in info.get("finished_stages", []))
    if stage is None:
        stage = max(finished, default=0)
    if stage != 0 and stage not in finished:
        done = ", ".join(map(str, finished)) if finished else "none"
        raise RunDirError(
            f"{run_dir}: stage {stage} is not finished (finished stages: {done}; "
            "stage 0 is the untrained model)"
        )
    manager = manager or get_plugin_manager()
    config = build_dataclass(RunConfig, info["config"], f"{run_dir / 'run.json'}: config")
    if cache_dir is not None:
        config = dataclasses.replace(config, cache_dir=str(cache_dir))
    if data_root is not None:
        config = dataclasses.replace(config, data_root=data_root)
    for kind, name in (("methods", config.method), ("benchmarks", config.bench)):
        _check_plugin(manager, kind, name, run_dir)
    if config.model:
        _check_plugin(manager, "models", config.model, run_dir)
    runner = Runner(config, run_dir, manager=manager, progress=False)
    recorded_identity = info.get("config_identity")
    identity = dataclasses.replace(runner.config, data_root=info["config"].get("data_root"))
    if recorded_identity and identity.identity() != recorded_identity:
        warnings.warn(
            f"{run_dir}: the installed plugins resolve the run's configuration differently "
            f"(identity {recorded_identity} recorded, {identity.identity()} now): a plugin's "
            "options changed since the run, so answers may differ from the stored ones",
            stacklevel=2,
        )
    by_name = {t.name: t for t in runner.benchmark.tasks()}
    recorded = list(info.get("tasks", []))
    unknown = [name for name in recorded if name not in by_name]
    if unknown:
        raise RunDirError(
            f"{run_dir} was run with tasks {recorded}; benchmark {config.bench!r} now has "
            f"no task(s) {unknown}"
        )
    tasks = [by_name[name] for name in recorded] or runner.task_order()
    checkpoint = runner.checkpoint_dir(stage) if stage >= 1 else None
    if checkpoint is not None and not checkpoint.is_dir():
        raise RunDirError(
            f"{run_dir}: stage {stage} is finished but its checkpoint {checkpoint} is missing"
        )
    ctx = runner.build(tasks)
    if checkpoint is not None:
        try:
            runner.restore(ctx, stage)
        except CvitError:
            raise
        except Exception as exc:  # a truncated or foreign file, whatever the method reads
            raise RunDirError(
                f"cannot load the checkpoint of stage {stage} from {checkpoint} "
                f"(corrupt or incomplete?): {type(exc).__name__}: {exc}"
            ) from exc
    return LoadedStage(runner, ctx, stage, finished, info)


def _check_plugin(manager: Any, kind: str, name: str, run_dir: Path) -> None:
    try:
        manager.registry(kind).get(name)
    except CvitError as exc:
        raise type(exc)(
            f"{run_dir} was made with the {kind[:-1]} {name!r}, which is not available here "
            f"(install the plugin that provides it): {exc}"
        ) from None


class LoadedStage:
    """A run's model after one stage, ready to answer.

    Attributes:
        run_dir: the run directory.
        stage: the loaded stage (0 = untrained).
        finished_stages: every finished stage of the run.
        info: the run's ``run.json``.
        config: the run's resolved :class:`RunConfig`.
        ctx: the :class:`RunContext` (``ctx.model`` the adapter, ``ctx.method`` the method).
        tasks: the run's tasks in training order.
    """

    def __init__(
        self,
        runner: Any,
        ctx: RunContext,
        stage: int,
        finished_stages: list[int],
        info: dict[str, Any],
    ) -> None:
        self.runner = runner
        self.ctx = ctx
        self.stage = stage
        self.finished_stages = finished_stages
        self.info = info
        self.run_dir = Path(runner.run_dir)
        self.config = runner.config
        self.tasks: list[TaskInfo] = list(ctx.tasks)

    @property
    def model(self) -> Any:
        """The model adapter."""
        return self.ctx.model

    @property
    def method(self) -> Any:
        return self.ctx.method

    @property
    def benchmark(self) -> Any:
        return self.ctx.benchmark

    @property
    def supports_history(self) -> bool:
        """Whether the model adapter lays out multi-turn conversations (``collate_chat``)."""
        return hasattr(self.model, "collate_chat")

    def describe(self) -> str:
        """One line: method, benchmark, model and stage."""
        c = self.config
        if self.stage == 0:
            what = "untrained (stage 0)"
        elif self.info.get("schedule") == "joint":
            what = f"stage {self.stage}, after joint training on all {len(self.tasks)} tasks"
        else:
            trained = self.tasks[self.stage - 1].name
            what = f"stage {self.stage} of {len(self.tasks)}, after {trained}"
        return f"{c.method} on {c.bench} with {c.model}: {what}"

    # -- generation ----------------------------------------------------------------------
    def default_max_new_tokens(self) -> int:
        """The run's ``eval.max_new_tokens`` when it sets one, else ``DEFAULT_MAX_NEW_TOKENS``."""
        return self.config.eval.max_new_tokens or DEFAULT_MAX_NEW_TOKENS

    def _generate(self, batch: dict[str, Any], max_new_tokens: int, streamer: Any) -> list[str]:
        import torch

        model = self.model.model
        model.eval()
        param = next(model.parameters())
        dtype = param.dtype if param.dtype in (torch.bfloat16, torch.float16) else torch.float32
        kwargs = {"streamer": streamer} if streamer is not None else {}
        with self.method.inference(self.ctx, batch):
            return list(
                self.model.generate(model, batch, max_new_tokens, param.device, dtype, **kwargs)
            )

    def generate(
        self,
        samples: Sequence[Sample],
        max_new_tokens: int | None = None,
        batch_size: int | None = None,
    ) -> list[str]:
        """Greedy answers for single-question ``samples`` (their ``prompt`` and ``image``), in
        batches of ``batch_size`` (default the run's ``eval.batch_size``), each batch inside
        the method's inference routing. ``sample.task`` is only a label here."""
        n = max_new_tokens or self.default_max_new_tokens()
        size = max(1, batch_size or self.config.eval.batch_size)
        out: list[str] = []
        for chunk in iter_batches(list(samples), size):
            out += self._generate(self.model.collate_eval(chunk), n, None)
        return out

    def answer(
        self,
        question: str,
        image: str | None = None,
        history: Sequence[Turn] = (),
        max_new_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> str:
        """The greedy answer to ``question`` about ``image`` after the exchanges ``history``.

        ``on_text`` receives the answer's text piece by piece while it is generated (the pieces
        join to the returned answer, up to surrounding white space). Interrupting
        (``KeyboardInterrupt``) stops generation; the routing context is left cleanly.
        """
        n = max_new_tokens or self.default_max_new_tokens()
        if self.supports_history:
            batch = self.model.collate_chat(list(history), question, image)
        elif history:
            raise UsageError(
                f"model {self.config.model!r} does not lay out multi-turn conversations "
                "(its adapter has no collate_chat); ask one question at a time"
            )
        else:
            batch = self.model.collate_eval(
                [Sample(id="chat", task="chat", prompt=question, image=image)]
            )
        streamer = None
        if on_text is not None and accepts_keyword(self.model.generate, "streamer"):
            streamer = TextStreamer(self.model.tokenizer, on_text)
        text = self._generate(batch, n, streamer)[0]
        if on_text is not None:
            if streamer is None:
                on_text(text)
            else:
                streamer.finish(text)
        return text

    def prompt(self, question: str, image: str | None = None, history: Sequence[Turn] = ()) -> str:
        """The prompt text ``answer`` would generate from (history included)."""
        if self.supports_history and hasattr(self.model, "render_chat"):
            return str(self.model.render_chat(list(history), question, image))
        return str(
            self.model.template.render(Sample(id="chat", task="chat", prompt=question, image=image))
        )

    def predict(self, task: str) -> list[Prediction]:
        """Evaluate ``task``'s evaluation samples as the run did (the engine's batched,
        sharded prediction with the run's evaluation settings)."""
        import dataclasses

        by_name = {t.name: t for t in self.tasks}
        if task not in by_name:
            raise UsageError(f"unknown task {task!r}; the run's tasks are {list(by_name)}")
        info = by_name[task]
        if self.config.eval.max_new_tokens is not None:
            info = dataclasses.replace(info, max_new_tokens=self.config.eval.max_new_tokens)
        self.ctx.stage = self.stage
        engine = self.ctx.extras.get("engine") or self.model.create_engine(self.ctx)
        self.ctx.extras["engine"] = engine
        return list(engine.predict(self.ctx, info, self.benchmark.eval_samples(task)))


class TextStreamer:
    """A ``transformers`` streamer that hands decoded text to ``on_text`` as tokens arrive.

    ``generate`` first passes the prompt ids (skipped), then each new token id. Text is decoded
    from all answer ids so far and only the new part is passed on; a piece that ends inside a
    multi-byte character waits for the next token. Tokens after the first EOS are ignored, as
    in evaluation; leading white space is dropped (answers begin with a space).
    """

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.eos = tokenizer.eos_token_id
        self.ids: list[int] = []
        self.sent = ""
        self._prompt_seen = False
        self._stopped = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if self._stopped:
            return
        for token in value.reshape(-1).tolist():
            if token == self.eos:
                self._stopped = True
                break
            self.ids.append(int(token))
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False).lstrip()
        if not final and text.endswith("\ufffd"):
            return
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_text(text[len(self.sent) :])
            self.sent = text

    def finish(self, answer: str) -> None:
        """Pass on whatever of ``answer`` was not streamed (nothing, normally)."""
        if answer.startswith(self.sent) and len(answer) > len(self.sent):
            self.on_text(answer[len(self.sent) :])
            self.sent = answer
