"""The ``cvit-bench`` command line.

Heavy modules (torch, transformers, pyarrow) are imported inside the commands that need them,
so ``cvit-bench list`` and ``--help`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from typing import Any

from .errors import CvitError

EXTENSION_MODULES = (
    "cvit_bench.harness.cli_data",
    "cvit_bench.harness.chat",
    "cvit_bench.plugins.benchmarks.synth_coin.cli",
    "cvit_bench.plugins.models.llava.cli",
    "cvit_bench.leaderboard.cli",
)
"""Modules that add commands: each has ``register(cli: CommandGroups)``."""


class CommandGroups:
    """Lets extension modules add commands at the top level or under a group (``data check``)."""

    def __init__(self, subparsers: Any):
        self.subparsers = subparsers
        self._groups: dict[str, Any] = {}

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A top-level command (``cvit-bench NAME``)."""
        return self.subparsers.add_parser(name, **kwargs)

    def group(self, name: str, help: str = "") -> Any:
        """The sub-command set of group ``name`` (``cvit-bench data ...``), created once."""
        if name not in self._groups:
            parser = self.subparsers.add_parser(name, help=help, description=help)
            self._groups[name] = parser.add_subparsers(
                dest=f"{name}_command", metavar="COMMAND", required=True
            )
        return self._groups[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvit-bench",
        description="Benchmark harness for continual visual instruction tuning of multimodal LLMs.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"cvit-bench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("list", help="list registered methods, benchmarks and models")
    p.add_argument(
        "kind", nargs="?", choices=["methods", "benchmarks", "models"], help="only this kind"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("plugins", help="list installed plugins, what they register, and errors")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser(
        "run",
        help="run the continual protocol",
        description="Train on the benchmark's tasks one after another, evaluating "
        "after each; re-running the same command resumes.",
    )
    p.add_argument("--method", help="continual method (default: seqlora)")
    p.add_argument("--bench", help="benchmark (default: synth-coin)")
    p.add_argument("--model", help="model (default: the benchmark's reference model)")
    p.add_argument("--config", metavar="FILE.yaml", help="a YAML run configuration")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. train.lr=1e-4 or method.rank=8 (repeatable)",
    )
    p.add_argument(
        "--out", metavar="DIR", help="run directory (default: runs/BENCH/METHOD-MODEL-seedSEED)"
    )
    p.add_argument("--seed", type=int, help="seed (default 0)")
    p.add_argument("--order", help="task order: comma-separated task names (a permutation)")
    p.add_argument(
        "--eval-on",
        choices=["all", "seen"],
        help="evaluate all tasks after each stage, or only the tasks seen so far",
    )
    p.add_argument("--data-root", help="local copy of the benchmark's data")
    p.add_argument(
        "--dry-run", action="store_true", help="print the resolved config and plan; touch nothing"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("show", help="print a run's accuracy matrix and metrics")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("metrics", help="continual metrics of an accuracy matrix made elsewhere")
    p.add_argument(
        "--matrix",
        required=True,
        metavar="FILE.csv",
        help="CSV: first column the task trained last, header the evaluated tasks, "
        "empty above the diagonal, optional zero-shot row",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_metrics)

    p = sub.add_parser("describe", help="a plugin's options (config fields) with their help")
    p.add_argument("kind", choices=["method", "benchmark", "model", "run"])
    p.add_argument("name", nargs="?", help="the plugin's name (not for 'run')")
    p.set_defaults(func=cmd_describe)

    groups = CommandGroups(sub)
    for module_name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # that part of cvit-bench is not present in this build
            raise
        module.register(groups)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CvitError as exc:
        print(f"cvit-bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "cvit-bench: interrupted; finished stages are kept, re-run the command to resume",
            file=sys.stderr,
        )
        return 130


# -- commands ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    kinds = [args.kind] if args.kind else ["methods", "benchmarks", "models"]
    data = {
        kind: [
            {
                "name": e.name,
                "aliases": list(e.aliases),
                "description": e.description,
                "distribution": e.origin.distribution,
                "version": e.origin.version,
                "plugin": e.origin.plugin,
            }
            for e in manager.registry(kind).entries()
        ]
        for kind in kinds
    }
    broken = [p for p in manager.plugins if not p.ok]
    if args.json:
        out: dict[str, Any] = dict(data)
        out["broken_plugins"] = [
            {"plugin": p.name, "distribution": p.distribution, "error": p.error} for p in broken
        ]
        print(json.dumps(out, indent=2))
        return 0
    for kind in kinds:
        print(f"{kind}:")
        rows = [
            (
                e["name"] + (f" ({', '.join(e['aliases'])})" if e["aliases"] else ""),
                f"{e['distribution']} {e['version']}",
                e["description"],
            )
            for e in data[kind]
        ]
        if not rows:
            print("  (none)")
        _print_rows(rows, indent=2)
        print()
    if broken:
        print(
            f"{len(broken)} plugin(s) failed to load; run 'cvit-bench plugins' for details:",
            ", ".join(p.name for p in broken),
        )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "plugin": p.name,
                        "entry_point": p.value,
                        "distribution": p.distribution,
                        "version": p.version,
                        "ok": p.ok,
                        "error": p.error,
                        "registered": p.registered,
                    }
                    for p in manager.plugins
                ],
                indent=2,
            )
        )
        return 0
    for p in manager.plugins:
        status = "ok" if p.ok else "BROKEN"
        print(f"{p.name}  [{status}]  {p.distribution} {p.version}  ({p.value})")
        for kind, names in sorted(p.registered.items()):
            print(f"    {kind}: {', '.join(names)}")
        if p.error:
            print(f"    error: {p.error}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .config import resolve_run_config
    from .runner import Runner

    flags = {
        "method": args.method,
        "bench": args.bench,
        "model": args.model,
        "seed": args.seed,
        "order": [t.strip() for t in args.order.split(",")] if args.order else None,
        "data_root": args.data_root,
    }
    overrides = list(args.overrides)
    if args.eval_on:
        overrides.append(f"eval.eval_on={args.eval_on}")
    from .plugins import get_plugin_manager

    manager = get_plugin_manager()
    config = resolve_run_config(args.config, flags, overrides, manager=manager)
    runner = Runner(config, args.out, manager=manager, progress=not args.no_progress)
    if args.dry_run:
        import yaml

        plan = runner.plan()
        print("# resolved configuration")
        print(yaml.safe_dump(plan["config"], sort_keys=False).rstrip())
        print(
            f"\n# plan: {plan['run_dir']} (config identity {plan['config_identity']}, "
            f"schedule {plan['schedule']})"
        )
        for step in plan["stages"]:
            train = f"train {step['train']}, " if step["train"] else "zero-shot, "
            print(
                f"stage {step['stage']}: {train}evaluate {', '.join(step['evaluate'])}"
                + (f"; general (lmms-eval) {', '.join(step['general'])}" if step["general"] else "")
                + f"  [{step['status']}]"
            )
        return 0
    results = runner.run()
    if results is not None:
        print(f"run directory: {results.run_dir}")
        print(format_results(results))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .results import RunResults

    results = RunResults(args.run_dir)
    if args.json:
        rows, zero_shot = results.matrix()
        print(
            json.dumps(
                {
                    "tasks": results.tasks,
                    "schedule": results.schedule,
                    "zero_shot": _json_floats(zero_shot),
                    "matrix": [_json_floats(r) for r in rows],
                    "metrics": _json_floats(results.metrics()),
                    "controls": [_json_floats(row) for row in results.controls()],
                    "general": _json_floats(results.general()),
                    "retention": _json_floats(results.retention()),
                    "complete": results.complete,
                },
                indent=2,
            )
        )
        return 0
    print(format_results(results))
    return 0


def format_results(results: Any) -> str:
    """The accuracy matrix and metrics of a run as a plain-text table."""
    from .metrics import DESCRIPTIONS, METRIC_NAMES

    lines = []
    config = results.info.get("config", {})
    lines.append(
        f"{config.get('method')} on {config.get('bench')} with {config.get('model')} "
        f"(seed {config.get('seed')}, {results.schedule}"
        f"{', ' + config.get('eval', {}).get('eval_on', '') if results.schedule == 'sequential' else ''})"
    )
    if not results.complete:
        done = results.info.get("finished_stages", [])
        lines.append(f"INCOMPLETE: finished stages {done}")
    tasks = results.tasks
    header = ["after"] + tasks
    table = [header]
    for stage in results.stages:
        label = "zero-shot" if stage == 0 else (results.trained.get(stage) or str(stage))
        table.append([label] + [_fmt(results.score(stage, t)) for t in tasks])
    lines.append(_format_rows(table))
    metrics = results.metrics()
    lines.append("")
    shown = [m for m in METRIC_NAMES if not math.isnan(metrics.get(m, math.nan))]
    for name in shown:
        lines.append(f"{name:>10}  {metrics[name]:7.2f}   {DESCRIPTIONS[name]}")
    if results.schedule == "joint":
        lines.append(
            "single-stage run (joint training on all tasks): MFT, MAA, BWT, "
            "Forgetting and FWT describe a sequence and are not defined"
        )
    elif results.schedule == "none":
        lines.append("evaluation-only run: only the zero-shot score is defined")
    missing = [m for m in METRIC_NAMES if m not in shown and results.schedule == "sequential"]
    if missing:
        lines.append(
            f"not defined for this run: {', '.join(missing)} "
            "(needs entries that were not evaluated)"
        )
    for (stage, task), reason in sorted(results.not_scored.items()):
        lines.append(f"not scored: stage {stage}, {task}: {reason}")
    controls = results.controls()
    if controls:
        lines.append("")
        lines.append(
            "right after training: the score, the same model on blank images, and the most "
            "frequent training answer for every question"
        )
        table = [["task", "trained", "blank image", "majority", "margin"]]
        for row in controls:
            margin = _control_margin(row)
            table.append(
                [
                    row["task"],
                    _fmt(_nan(row["score"])),
                    _fmt(_nan(row["blank_image"])),
                    _fmt(_nan(row["majority"])),
                    _fmt(margin),
                ]
            )
        lines.append(_format_rows(table))
        lines.append("margin: trained minus the larger of blank image and majority")
    lines.extend(format_general(results))
    return "\n".join(lines)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _control_margin(row: dict[str, Any]) -> float:
    """How far a task's score right after training is above its image-free explanations."""
    others = [_nan(row[k]) for k in ("blank_image", "majority") if row[k] is not None]
    if not others:
        return math.nan
    return _nan(row["score"]) - max(others)


def format_general(results: Any) -> list[str]:
    """The general-ability scores (lmms-eval tasks, primary metrics) and their retention."""
    rows = [r for r in results.general() if r["primary"]]
    if not rows:
        return []
    columns = sorted({(r["task"], r["metric"]) for r in rows})
    values = {(r["stage"], r["task"], r["metric"]): r["value"] for r in rows}
    trained = {r["stage"]: r["trained_task"] for r in rows}
    table = [["after"] + [f"{task} ({metric})" for task, metric in columns]]
    for stage in sorted(trained):
        label = "zero-shot" if stage == 0 else (trained[stage] or str(stage))
        table.append([label] + [_fmt_general(values.get((stage, *c))) for c in columns])
    lines = ["", "general ability (lmms-eval, on its scale):", _format_rows(table)]
    for task, kept in sorted(results.retention().items()):
        ratio = kept["retention"]
        shown = "-" if math.isnan(ratio) else f"{100 * ratio:.1f}%"
        lines.append(
            f"retention  {task}: {_fmt_general(kept['after'])} after stage {kept['stage']} / "
            f"{_fmt_general(kept['before'])} before training = {shown}"
        )
    return lines


def _fmt_general(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4g}"


def cmd_metrics(args: argparse.Namespace) -> int:
    from .metrics import DESCRIPTIONS, METRIC_NAMES, continual_metrics, read_matrix_csv

    tasks, rows, zero_shot = read_matrix_csv(args.matrix)
    metrics = continual_metrics(rows, zero_shot)
    if args.json:
        print(json.dumps(_json_floats(metrics)))
        return 0
    print(f"{len(tasks)} tasks: {', '.join(tasks)}")
    for name in METRIC_NAMES:
        print(f"{name:>10}  {_fmt(metrics[name]):>7}   {DESCRIPTIONS[name]}")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from .config import RunConfig, describe_fields
    from .errors import UsageError
    from .plugins import get_plugin_manager

    if args.kind == "run":
        cls = RunConfig
    else:
        if not args.name:
            raise UsageError(f"describe {args.kind} needs a name")
        manager = get_plugin_manager()
        plugin = manager.registry(args.kind + "s").load(args.name)
        cls = getattr(plugin, "config_class", None)
        _print_compatibility(manager, args.kind, plugin)
    fields = describe_fields(cls) if cls is not None else []
    if not fields:
        print("(no options)")
    for f in fields:
        choices = f" {{{', '.join(map(str, f['choices']))}}}" if f["choices"] else ""
        print(f"{f['name']} ({f['type']}, default {f['default']!r}){choices}\n    {f['help']}")
    return 0


def _print_compatibility(manager: Any, kind: str, plugin: Any) -> None:
    """Which model features a method needs and which models offer them, or what a model
    offers and which methods it can run (entries that fail to load are left out)."""
    from .capabilities import method_needs, missing_features, model_features
    from .errors import CvitError

    def loaded(registry: str) -> list[tuple[str, Any]]:
        out = []
        for entry in manager.registry(registry).entries():
            try:
                out.append((entry.name, entry.load()))
            except CvitError:
                continue
        return out

    if kind == "method":
        needs = method_needs(plugin)
        print(f"needs model features: {', '.join(needs) or 'none'}")
        able = [n for n, m in loaded("models") if not missing_features(plugin, m)]
        print(f"runs with models: {', '.join(able) or 'none installed'}\n")
    elif kind == "model":
        print(f"model features: {', '.join(sorted(model_features(plugin))) or 'none'}")
        able = [n for n, m in loaded("methods") if not missing_features(m, plugin)]
        print(f"runs methods: {', '.join(able) or 'none installed'}\n")


# -- formatting helpers -----------------------------------------------------------------------


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def _json_floats(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return {k: _json_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_floats(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj


def _format_rows(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
        )
        for row in rows
    )


def _print_rows(rows: list[tuple[str, ...]], indent: int = 0) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(" " * indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
