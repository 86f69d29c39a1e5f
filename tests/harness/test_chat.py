"""``cvit-bench chat`` on the session's small real run: through a pseudo-terminal, piped, one-shot."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from cvit_bench.harness.chat import ChatSession, _interactive
from cvit_bench.harness.cli import main
from cvit_bench.harness.results import RunResults
from cvit_bench.harness.stage_loader import load_stage
from cvit_bench.harness.types import Turn

CLI = [sys.executable, "-m", "cvit_bench.harness.cli", "chat"]


@pytest.fixture(scope="module")
def stage2(tiny_run_dir):
    return load_stage(tiny_run_dir, 2)


@pytest.fixture(scope="module")
def questions(tiny_run_dir, stage2):
    """Two evaluation questions on different images, with the answers stored at stages 0, 2."""
    results = RunResults(tiny_run_dir)
    out = []
    for task in ("TextVQA", "ScienceQA"):
        sample = stage2.benchmark.eval_samples(task)[0]
        answers = {
            stage: {r["id"]: r["prediction"] for r in results.predictions(stage, task)}
            for stage in (0, 2)
        }
        out.append((sample, answers[0][str(sample.id)], answers[2][str(sample.id)]))
    (_, _, a2), (_, b0, b2) = out
    assert a2 and b2 and a2 != b2 and b0 != b2  # otherwise the checks below prove nothing
    return out


def typed(text: str) -> bytes:
    """A message as typed: newlines inside it continue the line with a backslash."""
    return (text.replace("\n", "\\\n") + "\n").encode()


class Terminal:
    """A child process on a pseudo-terminal, read until expected text appears."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "TERM": "dumb", "PYTHONIOENCODING": "utf-8"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: stdin, stdout and stderr are the terminal
            # a foreground job of a terminal: Ctrl-C interrupts it, even when these tests were
            # started where SIGINT is ignored (a background job inherits SIG_IGN through exec,
            # and Python then raises no KeyboardInterrupt)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvpe(argv[0], argv, env)
        self.seen = ""

    def expect(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.seen, re.S)
            if match:
                self.seen = self.seen[match.end() :]
                return match
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} in {self.seen!r}"
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    data = b""
                assert data, f"the chat ended before {pattern!r}: {self.seen!r}"
                self.seen += data.decode("utf-8", "replace").replace("\r\n", "\n")

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def answer(self, message: str) -> str:
        """Send a message; return the answer shown between ``ASSISTANT>`` and the next prompt."""
        self.send(typed(message))
        return self.expect(r"ASSISTANT> (.*?)\nUSER> ").group(1).strip()

    def command(self, line: str) -> str:
        self.send(typed(line))
        return self.expect(r"(.*?)USER> ").group(1)

    def wait(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096).decode("utf-8", "replace")
                except OSError:
                    pass
        os.kill(self.pid, 9)
        raise AssertionError(f"the chat did not exit: {self.seen!r}")


@pytest.mark.slow
def test_interactive_chat_through_a_terminal(tiny_run_dir, stage2, questions):
    (a, _, a2), (b, b0, b2) = questions
    term = Terminal([*CLI, str(tiny_run_dir), "--stage", "2", "--image", a.image])
    try:
        term.expect(r"stage 2 of 8, after TextVQA.*USER> ")
        # the first question is the evaluation question: the run's stored answer, streamed
        assert term.answer(a.prompt) == a2
        second = term.answer("and what colour is it?")
        shown = term.command("/prompt")
        # the second turn's prompt holds the first exchange, closed by EOS, as in training
        first_line = a.prompt.splitlines()[0]
        assert re.search(
            re.escape(first_line) + r".*ASSISTANT: " + re.escape(a2) + r"</s>USER: and what "
            r"colour is it\? ASSISTANT:",
            shown,
            re.S,
        ), shown
        assert second == stage2.answer("and what colour is it?", a.image, [Turn(a.prompt, a2)])
        # a new image starts a new conversation: b's question gets b's stored answer
        assert "new conversation" in term.command(f"/image {b.image}")
        assert term.answer(b.prompt) == b2
        assert first_line not in term.command("/prompt")
        # another stage of the same run, same image
        assert "untrained (stage 0)" in term.command("/stage 0")
        assert term.answer(b.prompt) == b0
        assert "unknown command /nope" in term.command("/nope")
        assert "stage 12 is not finished" in term.command("/stage 12")
        assert "new conversation" in term.command("/reset")
        assert term.answer(b.prompt) == b0  # still stage 0
        # Ctrl-C while an answer is being written stops it; the chat goes on
        assert "after 500 new tokens" in term.command("/tokens 500")
        term.send(typed("hello there"))  # the untrained model rambles on
        term.expect(r"ASSISTANT> ")
        term.send(b"\x03")
        term.expect(r"\[stopped; the unfinished answer is not kept\]\nUSER> ")
        term.send(b"\x04")  # Ctrl-D
        assert term.wait() == 0
    finally:
        try:
            os.kill(term.pid, 9)
            os.waitpid(term.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(term.fd)
    assert "Traceback" not in term.seen


def test_one_shot_and_piped_lines(tiny_run_dir, stage2, questions, capsys, monkeypatch):
    """In-process (the pseudo-terminal test runs the real command line)."""
    (a, _, a2), (b, _, b2) = questions
    run = [str(tiny_run_dir), "--stage", "2"]
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["chat", *run, "--image", a.image, "--prompt", a.prompt]) == 0
    assert capsys.readouterr().out == a2 + "\n"
    # piped: each line a message (a trailing backslash continues it), one answer per line
    script = typed(b.prompt).decode() + "/prompt\n" + "what else?\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert main(["chat", *run, "--image", b.image]) == 0
    follow_up = stage2.answer("what else?", b.image, [Turn(b.prompt, b2)])
    captured = capsys.readouterr()
    assert captured.out == "\n".join([b2, stage2.prompt(b.prompt, b.image), follow_up, ""])
    assert "Traceback" not in captured.err


class CtrlCWhileAnswering(io.StringIO):
    """Standard output on which the user presses Ctrl-C when the first piece of the first
    answer arrives (the signal raises KeyboardInterrupt in the generating thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.answering = False
        self.pressed = False

    def write(self, text: str) -> int:
        if self.answering and not self.pressed:
            self.pressed = True
            raise KeyboardInterrupt
        self.answering = text == "ASSISTANT> "
        return super().write(text)


def test_ctrl_c_stops_an_answer_and_leaves_at_the_prompt(stage2, questions, monkeypatch):
    (a, _, a2), _ = questions
    out = CtrlCWhileAnswering()
    session = ChatSession(lambda stage: stage2, 2, a.image, None, out)
    typed_lines = iter([a.prompt.replace("\n", " "), a.prompt.replace("\n", " ")])

    def fake_input(prompt: str) -> str:
        line = next(typed_lines, None)
        if line is None:
            raise KeyboardInterrupt  # Ctrl-C at the prompt
        return line

    monkeypatch.setattr("builtins.input", fake_input)
    assert _interactive(session) == 0
    text = out.getvalue()
    assert "[stopped; the unfinished answer is not kept]" in text
    assert len(session.history) == 1  # only the second, complete answer was kept
    assert session.history[0].gpt and text.rstrip().endswith("ASSISTANT> " + session.history[0].gpt)


def test_bad_run_dir_and_stage_are_one_message(tiny_run_dir, tmp_path, capsys):
    assert main(["chat", str(tmp_path), "--prompt", "hi"]) == 1
    err = capsys.readouterr().err
    assert "not a cvit-bench run directory (no run.json)" in err and "Traceback" not in err
    assert main(["chat", str(tiny_run_dir), "--stage", "12", "--prompt", "hi"]) == 1
    err = capsys.readouterr().err
    assert "stage 12 is not finished (finished stages: 0, 1, 2, 3, 4, 5, 6, 7, 8;" in err


def test_a_bad_image_is_refused_before_any_question(stage2, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("text")
    from cvit_bench.harness.errors import CvitError

    with pytest.raises(CvitError, match="no image file"):
        ChatSession(lambda stage: stage2, 2, str(tmp_path / "missing.png"), None, io.StringIO())
    with pytest.raises(CvitError, match="cannot read image .*not-an-image.png"):
        ChatSession(lambda stage: stage2, 2, str(bad), None, io.StringIO())


def test_the_guide_documents_the_chat_members_of_a_model_adapter():
    import inspect

    from cvit_bench.plugins.models.llava_common import LlavaFamilyAdapter

    guide = (Path(__file__).parents[2] / "docs" / "plugin-guide.md").read_text()
    for name in ("collate_chat", "render_chat", "generate"):
        sig = inspect.signature(getattr(LlavaFamilyAdapter, name))
        params = list(sig.parameters.values())[1:]
        text = f"{name}{sig.replace(parameters=params)}".replace("'", "")
        assert f"`{text}`" in guide, f"docs/plugin-guide.md lacks {text}"
