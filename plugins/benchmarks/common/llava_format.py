"""Readers for the LLaVA conversation format (training) and COIN's test format (evaluation).

Training files are JSON lists of ``{"id", "image", "conversations": [{"from": "human",
"value": "<image>\\n..."}, {"from": "gpt", "value": "..."}, ...]}`` (``image`` optional, several
exchanges allowed). Test files are JSON lists of ``{"question_id", "image", "text", "answer",
...}``; extra fields (``answer_bbox``, ``size``, ...) are kept verbatim in ``Sample.meta``.

Every reader raises :class:`~cvit_bench.harness.errors.DataError` naming the file, the entry
index and the field, or, given a ``problems`` list, records each problem there and skips the
entry (the data checker uses that to report everything at once).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness.errors import DataError
from cvit_bench.harness.types import Sample, Turn

from .base import BenchmarkBase, BenchmarkConfig  # noqa: F401  (re-exported for plugins)

IMAGE_TOKEN = "<image>"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a data file."""

    file: str
    message: str
    entry: int | None = None
    field: str | None = None
    severity: str = "error"

    def describe(self) -> str:
        where = self.file
        if self.entry is not None:
            where += f": entry {self.entry}"
        if self.field is not None:
            where += f": field {self.field!r}"
        return f"{where}: {self.message}"


Sink = Callable[[Problem], None]


def _raise(problem: Problem) -> None:
    raise DataError(problem.describe())


def _sink(problems: list[Problem] | None) -> Sink:
    return problems.append if problems is not None else _raise


def read_json(path: str | os.PathLike[str], problems: list[Problem] | None = None) -> Any:
    """Parse a JSON file; a missing or malformed file is a ``DataError`` naming it (or, with
    ``problems``, a recorded problem and ``None``)."""
    path = Path(path)
    report = _sink(problems)
    if not path.is_file():
        report(Problem(str(path), "file not found"))
        return None
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as exc:
        report(
            Problem(
                str(path),
                f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}); is the file truncated?",
            )
        )
    except (OSError, UnicodeDecodeError) as exc:
        report(Problem(str(path), f"cannot be read: {exc}"))
    return None


def read_json_list(
    path: str | os.PathLike[str], problems: list[Problem] | None = None
) -> list[Any] | None:
    """A JSON file holding a list of objects (annotation files)."""
    data = read_json(path, problems)
    if data is None:
        return None
    if not isinstance(data, list):
        _sink(problems)(
            Problem(str(path), f"expected a JSON list of entries, found a {type(data).__name__}")
        )
        return None
    return data


def strip_image_token(text: str) -> str:
    """The prompt without LLaVA's ``<image>`` placeholder and the newline beside it."""
    if IMAGE_TOKEN not in text:
        return text.strip()
    return "\n".join(part.strip("\n") for part in text.split(IMAGE_TOKEN) if part.strip()).strip()


def image_path(root: str | os.PathLike[str], relative: str) -> str:
    """Absolute path of an image named relative to the data root (absolute names are kept)."""
    return os.path.abspath(os.path.join(os.fspath(root), relative))


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _image_field(
    item: dict[str, Any], root: str | os.PathLike[str], where: Problem, report: Sink
) -> tuple[bool, str | None]:
    if "image" not in item or item["image"] is None:
        return True, None
    value = item["image"]
    if not isinstance(value, str) or not value:
        report(
            Problem(
                where.file, f"expected a relative image path, found {value!r}", where.entry, "image"
            )
        )
        return False, None
    return True, image_path(root, value)


def parse_train_entries(
    items: list[Any],
    *,
    task: str,
    root: str | os.PathLike[str],
    file: str,
    problems: list[Problem] | None = None,
    positions: list[int] | None = None,
) -> list[Sample]:
    """LLaVA conversation entries -> samples (``turns`` holds every exchange when there are
    several; ``meta`` keeps unknown fields). ``positions``, when given, receives each sample's
    entry index in ``items``."""
    report = _sink(problems)
    samples: list[Sample] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            report(Problem(file, f"expected an object, found {type(item).__name__}", index))
            continue
        if "id" not in item:
            report(Problem(file, "missing (every training entry needs an id)", index, "id"))
            continue
        if not _is_id(item["id"]):
            report(
                Problem(file, f"expected a string or integer, found {item['id']!r}", index, "id")
            )
            continue
        ok, image = _image_field(item, root, Problem(file, "", index), report)
        if not ok:
            continue
        conversations = item.get("conversations")
        if conversations is None:
            report(
                Problem(
                    file,
                    "missing (a LLaVA training entry holds its exchanges there)",
                    index,
                    "conversations",
                )
            )
            continue
        turns = _parse_conversations(conversations, file, index, report)
        if turns is None:
            continue
        meta = {k: v for k, v in item.items() if k not in ("id", "image", "conversations")}
        if positions is not None:
            positions.append(index)
        samples.append(
            Sample(
                id=item["id"],
                task=task,
                prompt=turns[0].human,
                answer=turns[0].gpt,
                image=image,
                turns=tuple(turns) if len(turns) > 1 else (),
                meta=meta,
            )
        )
    return samples


def _parse_conversations(
    conversations: Any, file: str, index: int, report: Sink
) -> list[Turn] | None:
    if not isinstance(conversations, list) or not conversations:
        report(Problem(file, "expected a non-empty list of messages", index, "conversations"))
        return None
    if len(conversations) % 2:
        report(
            Problem(
                file,
                f"{len(conversations)} messages: expected human/gpt pairs",
                index,
                "conversations",
            )
        )
        return None
    turns: list[Turn] = []
    for position, message in enumerate(conversations):
        field_name = f"conversations[{position}]"
        expected = "human" if position % 2 == 0 else "gpt"
        if not isinstance(message, dict):
            report(Problem(file, "expected an object with 'from' and 'value'", index, field_name))
            return None
        for key in ("from", "value"):
            if key not in message:
                report(Problem(file, "missing", index, f"{field_name}.{key}"))
                return None
        if message["from"] != expected:
            report(
                Problem(
                    file,
                    f"expected a {expected!r} message, found {message['from']!r}",
                    index,
                    f"{field_name}.from",
                )
            )
            return None
        if not isinstance(message["value"], str):
            report(
                Problem(
                    file,
                    f"expected a string, found {type(message['value']).__name__}",
                    index,
                    f"{field_name}.value",
                )
            )
            return None
    for position in range(0, len(conversations), 2):
        human = strip_image_token(conversations[position]["value"])
        turns.append(Turn(human=human, gpt=conversations[position + 1]["value"]))
    return turns


TEST_FIELDS = ("question_id", "text", "answer")


def parse_test_entries(
    items: list[Any],
    *,
    task: str,
    root: str | os.PathLike[str],
    file: str,
    problems: list[Problem] | None = None,
    require_answer: bool = True,
    positions: list[int] | None = None,
) -> list[Sample]:
    """COIN-style test entries -> samples (``meta`` keeps every other field verbatim).
    ``positions``, when given, receives each sample's entry index in ``items``."""
    report = _sink(problems)
    samples: list[Sample] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            report(Problem(file, f"expected an object, found {type(item).__name__}", index))
            continue
        missing = [k for k in TEST_FIELDS if k not in item and (require_answer or k != "answer")]
        if missing:
            found = ", ".join(sorted(map(str, item))) or "none"
            report(Problem(file, f"missing (fields found: {found})", index, missing[0]))
            continue
        if not _is_id(item["question_id"]):
            report(
                Problem(
                    file,
                    f"expected a string or integer, found {item['question_id']!r}",
                    index,
                    "question_id",
                )
            )
            continue
        if not isinstance(item["text"], str):
            report(
                Problem(
                    file, f"expected a string, found {type(item['text']).__name__}", index, "text"
                )
            )
            continue
        ok, image = _image_field(item, root, Problem(file, "", index), report)
        if not ok:
            continue
        answer = item.get("answer")
        if isinstance(answer, list) and answer and all(_is_scalar(a) for a in answer):
            answer = answer[0]  # several accepted answers (MLLM-CL OCR): meta keeps them all
        if not (answer is None or _is_scalar(answer)):
            report(
                Problem(
                    file,
                    f"expected a string, a number or a list of them, found {answer!r}",
                    index,
                    "answer",
                )
            )
            continue
        meta = {k: v for k, v in item.items() if k not in ("question_id", "image", "text")}
        if answer is not None and not isinstance(answer, str):
            answer = str(answer)  # numeric answers (CLEVR-Math) compare as text; meta keeps it
        if positions is not None:
            positions.append(index)
        samples.append(
            Sample(
                id=item["question_id"],
                task=task,
                prompt=strip_image_token(item["text"]),
                answer=answer,
                image=image,
                meta=meta,
            )
        )
    return samples


def read_train(
    path: str | os.PathLike[str],
    *,
    task: str,
    root: str | os.PathLike[str],
    problems: list[Problem] | None = None,
) -> list[Sample]:
    """Read a LLaVA conversation training file; images resolve under ``root``."""
    items = read_json_list(path, problems)
    if items is None:
        return []
    return parse_train_entries(items, task=task, root=root, file=str(path), problems=problems)


def read_test(
    path: str | os.PathLike[str],
    *,
    task: str,
    root: str | os.PathLike[str],
    problems: list[Problem] | None = None,
    require_answer: bool = True,
) -> list[Sample]:
    """Read a COIN-style test file; images resolve under ``root``."""
    items = read_json_list(path, problems)
    if items is None:
        return []
    return parse_test_entries(
        items,
        task=task,
        root=root,
        file=str(path),
        problems=problems,
        require_answer=require_answer,
    )


def check_unique_ids(
    samples: list[Sample],
    file: str,
    problems: list[Problem] | None = None,
    positions: list[int] | None = None,
    field: str = "question_id",
) -> None:
    """Ids must be unique within a file: predictions are matched to references by id."""
    seen: dict[Any, int] = {}
    report = _sink(problems)
    for number, sample in enumerate(samples):
        index = positions[number] if positions is not None else number
        if sample.id in seen:
            report(Problem(file, f"id {sample.id!r} repeats entry {seen[sample.id]}", index, field))
        else:
            seen[sample.id] = index


class CoinLayout:
    """COIN's layout (SEFE's release): ``<root>/annotations/<Task>/{train,test}.json``, images
    named relative to ``<root>``. CoIN's own release names some test files ``val.json``: both are
    accepted (``test.json`` first)."""

    TEST_NAMES = ("test.json", "val.json")
    ANNOTATION_DIRS = ("annotations", "Instructions_Original")

    def __init__(self, root: str | os.PathLike[str], annotations: str | None = None) -> None:
        """``annotations`` names the folder under ``root`` that holds the task folders; by
        default ``annotations`` (SEFE's release), else ``Instructions_Original`` (CoIN's)
        when only that one exists."""
        self.root = Path(root)
        if annotations is None:
            annotations = self.ANNOTATION_DIRS[0]
            for name in self.ANNOTATION_DIRS:
                if (self.root / name).is_dir():
                    annotations = name
                    break
        self.annotations = annotations

    def task_dir(self, task: str) -> Path:
        return self.root / self.annotations / task

    def train_file(self, task: str, name: str = "train.json") -> Path:
        return self.task_dir(task) / name

    def test_file(self, task: str) -> Path:
        """The task's test file: ``test.json``, else ``val.json``; ``test.json`` when neither
        exists (so that the error names the expected file)."""
        for name in self.TEST_NAMES:
            candidate = self.task_dir(task) / name
            if candidate.is_file():
                return candidate
        return self.task_dir(task) / self.TEST_NAMES[0]

    def tasks_present(self) -> list[str]:
        folder = self.root / self.annotations
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    def read_train(
        self,
        task: str,
        name: str = "train.json",
        *,
        task_name: str | None = None,
        problems: list[Problem] | None = None,
    ) -> list[Sample]:
        return read_train(
            self.train_file(task, name), task=task_name or task, root=self.root, problems=problems
        )

    def read_test(
        self, task: str, *, task_name: str | None = None, problems: list[Problem] | None = None
    ) -> list[Sample]:
        path = self.test_file(task)
        samples = read_test(path, task=task_name or task, root=self.root, problems=problems)
        check_unique_ids(samples, str(path), problems)
        return samples
