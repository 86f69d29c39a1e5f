"""Run configuration: defaults, YAML files, ``--set key=value`` overrides, and validation.

A run's configuration is layered: built-in defaults, then the ``--config`` YAML file, then the
CLI flags (``--method``, ``--seed``, ...), then each ``--set key=value`` in order. Plugin
options live in the sections ``method_args``, ``bench_args`` and ``model_args``, each validated
against the plugin's config dataclass (``--set method.rank=8`` is short for
``--set method_args.rank=8``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import UsageError


def config_field(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    default_factory: Any = dataclasses.MISSING,
    choices: tuple[Any, ...] = (),
) -> Any:
    """A dataclass field that documents itself: ``help`` feeds CLI help and leaderboard pages."""
    metadata = {"help": help}
    if choices:
        metadata["choices"] = choices
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """How each task is trained (the engine reads these)."""

    epochs: float = config_field(1.0, help="passes over each task's training data")
    max_steps: int | None = config_field(
        None, help="stop a task after this many optimizer steps (overrides epochs)"
    )
    batch_size: int = config_field(8, help="micro-batch size per process")
    grad_accum: int = config_field(
        1, help="gradient accumulation steps (global batch = batch_size x grad_accum x processes)"
    )
    lr: float = config_field(2e-4, help="learning rate of the method's parameters")
    projector_lr: float | None = config_field(
        None, help="learning rate of the vision projector when it trains (None: it stays frozen)"
    )
    warmup_ratio: float = config_field(
        0.03, help="fraction of a task's steps spent warming the learning rate up"
    )
    schedule: str = config_field(
        "cosine",
        help="learning-rate schedule after warm-up",
        choices=("cosine", "constant", "linear"),
    )
    weight_decay: float = config_field(0.0, help="AdamW weight decay")
    max_grad_norm: float = config_field(1.0, help="gradient clipping norm (0 disables)")
    zero_stage: int = config_field(0, help="DeepSpeed ZeRO stage", choices=(0, 1, 2, 3))
    precision: str = config_field(
        "auto",
        help="fp32, bf16, or auto (bf16 on GPU, fp32 on CPU)",
        choices=("auto", "fp32", "bf16"),
    )
    gradient_checkpointing: bool = config_field(False, help="recompute activations to save memory")
    max_length: int = config_field(2048, help="truncate training sequences to this many tokens")
    deepspeed_config: str | None = config_field(
        None, help="a DeepSpeed JSON config file merged over the generated one"
    )


@dataclass
class EvalConfig:
    """How every stage is evaluated."""

    eval_on: str = config_field(
        "all",
        help="after each task evaluate all tasks, or only the seen ones (lower triangle)",
        choices=("all", "seen"),
    )
    batch_size: int = config_field(16, help="generation batch size per process")
    max_new_tokens: int | None = config_field(
        None, help="override the benchmark's generation budget"
    )
    zero_shot: bool = config_field(
        True, help="evaluate the untrained model first (stage 0; needed for FWT)"
    )
    controls: bool = config_field(
        True,
        help="right after a task is trained, score it again with every image replaced by a "
        "blank grey one, and score its most frequent training answer: whether the task was "
        "learned from the image or from answer priors (controls.arrow)",
    )
    general_tasks: list[str] = config_field(
        default_factory=list,
        help="lmms-eval tasks scored as general ability (needs the extra: pip install "
        "'cvit-bench[lmms]' && pip install --no-deps lmms-eval==0.7.3)",
    )
    general_stages: list[int] | None = config_field(
        None,
        help="stages after which the general tasks are scored "
        "(default: the first and the last stage, 0 and T)",
    )
    general_include_path: list[str] = config_field(
        default_factory=list,
        help="folders with more lmms-eval task YAML files (lmms-eval's --include_path)",
    )
    general_limit: int | None = config_field(
        None, help="score only the first N documents of each general task (lmms-eval's --limit)"
    )


@dataclass
class RunConfig:
    """One run: (model, method, benchmark, task order, seed, options)."""

    method: str = config_field("seqlora", help="continual method (cvit-bench list methods)")
    bench: str = config_field("synth-coin", help="benchmark (cvit-bench list benchmarks)")
    model: str | None = config_field(
        None, help="model (cvit-bench list models); default: the benchmark's reference model"
    )
    seed: int = config_field(0, help="seed for data order, initialisation and sampling")
    order: list[str] | None = config_field(
        None, help="task order: a permutation of the benchmark's tasks (default: published order)"
    )
    data_root: str | None = config_field(
        None, help="local copy of the benchmark's data (or $CVIT_BENCH_DATA_ROOT)"
    )
    cache_dir: str | None = config_field(
        None,
        help="reusable artefacts (generated data, pretrained tiny models); default ~/.cache/cvit-bench or $CVIT_BENCH_CACHE",
    )
    tags: list[str] = config_field(
        default_factory=list, help="free labels shown and filterable on the leaderboard"
    )
    train: TrainConfig = config_field(default_factory=TrainConfig, help="training options")
    eval: EvalConfig = config_field(default_factory=EvalConfig, help="evaluation options")
    method_args: dict[str, Any] = config_field(
        default_factory=dict, help="the method's options (its config dataclass)"
    )
    bench_args: dict[str, Any] = config_field(default_factory=dict, help="the benchmark's options")
    model_args: dict[str, Any] = config_field(default_factory=dict, help="the model's options")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> str:
        """A hash of everything that changes results; a run directory belongs to one identity.

        ``cache_dir`` and ``tags`` are left out: they do not change results.
        """
        data = self.to_dict()
        data.pop("cache_dir", None)
        data.pop("tags", None)
        if isinstance(data.get("eval"), dict) and not data["eval"].get("general_tasks"):
            # runs without general tasks keep the identity they had before these options
            for key in GENERAL_EVAL_KEYS:
                data["eval"].pop(key, None)
        blob = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


GENERAL_EVAL_KEYS = ("general_tasks", "general_stages", "general_include_path", "general_limit")

SECTION_ALIASES = {"method": "method_args", "bench": "bench_args", "model": "model_args"}


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as YAML (``1e-4`` → float, ``[a, b]`` → list, ``null`` → None)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``key.sub=value`` assignment to a nested config dict in place."""
    if "=" not in assignment:
        raise UsageError(f"--set expects key=value, got {assignment!r}")
    key, _, raw = assignment.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise UsageError(f"--set {assignment!r}: empty key")
    if len(parts) > 1 and parts[0] in SECTION_ALIASES:
        parts[0] = SECTION_ALIASES[parts[0]]
    target = data
    for part in parts[:-1]:
        node = target.get(part)
        if node is None:
            node = target[part] = {}
        if not isinstance(node, dict):
            raise UsageError(f"--set {assignment!r}: {part!r} is not a section")
        target = node
    target[parts[-1]] = parse_value(raw)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file; a missing or malformed file is a clear error."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise UsageError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"config file {path} must hold a mapping at the top level")
    return data


def build_dataclass(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    """Instantiate config dataclass ``cls`` from ``data``, checking names, types and choices."""
    data = dict(data or {})
    if not dataclasses.is_dataclass(cls):
        if data:
            raise UsageError(f"{where} takes no options, got {sorted(data)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        import difflib

        hint = ""
        close = difflib.get_close_matches(unknown[0], list(fields), n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
        raise UsageError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}.{hint} "
            f"Known: {', '.join(sorted(fields))}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        hint = hints.get(name, Any)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = build_dataclass(hint, value, f"{where}.{name}")
        else:
            value = _coerce(value, hint, f"{where}.{name}")
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise UsageError(f"{where}.{name} must be one of {list(choices)}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is None:
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise UsageError(f"{where} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where} expects a list, got {value!r}")
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return items if origin is list else tuple(items)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{where} expects a mapping, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise UsageError(f"{where} expects true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise UsageError(f"{where} expects an integer, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"{where} expects an integer, got {value!r}") from None
        if number != int(number):
            raise UsageError(f"{where} expects an integer, got {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise UsageError(f"{where} expects a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{where} expects a number, got {value!r}") from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise UsageError(f"{where} expects a string, got {value!r}")
        return str(value)
    return value


def resolve_run_config(
    file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    manager: Any = None,
) -> RunConfig:
    """Layer defaults, a YAML file, CLI flags and ``--set`` overrides into a ``RunConfig``.

    With a plugin ``manager``, the chosen benchmark's and model's ``run_defaults`` (optional
    class attributes, e.g. ``{"train": {"lr": 2e-3}}`` for a tiny model) sit between the
    built-in defaults and everything the user gives: the user always has the last word.
    """
    data: dict[str, Any] = {}
    if file is not None:
        data = load_yaml(file)
    for key, value in (flags or {}).items():
        if value is not None:
            data[key] = value
    for assignment in overrides or []:
        apply_override(data, assignment)
    if manager is not None:
        data = deep_merge(plugin_run_defaults(data, manager), data)
    return build_dataclass(RunConfig, data, "config")


def plugin_run_defaults(data: dict[str, Any], manager: Any) -> dict[str, Any]:
    """The benchmark's ``run_defaults``, then the model's over them, for the names in ``data``.

    An unknown or broken name contributes nothing here; the runner reports it.
    """
    from .errors import CvitError

    try:
        bench_cls = manager.benchmark(data.get("bench") or RunConfig.bench)
    except CvitError:
        return {}
    model_name = data.get("model") or getattr(bench_cls, "reference_model", None)
    defaults = dict(getattr(bench_cls, "run_defaults", None) or {})
    if model_name:
        try:
            model_cls = manager.model(model_name)
        except CvitError:
            return defaults
        defaults = deep_merge(defaults, getattr(model_cls, "run_defaults", None) or {})
    return defaults


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``top``, section by section (neither is modified)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def describe_fields(cls: type, prefix: str = "") -> list[dict[str, Any]]:
    """``[{name, type, default, help, choices}]`` for a config dataclass (CLI help, docs, site).

    Nested config dataclasses (``train``, ``eval``) are flattened to dotted names, the form
    ``--set`` takes.
    """
    if not dataclasses.is_dataclass(cls):
        return []
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        if dataclasses.is_dataclass(hint):
            out.extend(describe_fields(hint, f"{prefix}{f.name}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        out.append(
            {
                "name": prefix + f.name,
                "type": _type_name(hint),
                "default": default,
                "help": f.metadata.get("help", ""),
                "choices": list(f.metadata.get("choices", ())),
            }
        )
    return out


def _type_name(hint: Any) -> str:
    if hint is None:
        return "any"
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")
