"""``cvit-bench chat``: talk to any stage of a run.

Interactive on a terminal (answers stream token by token, the conversation is kept, commands
start with ``/``); one question with ``--prompt``; with standard input not a terminal, each line
is the next user message of one conversation and only the answers are printed, one per line.

The model is loaded with :func:`cvit_bench.harness.stage_loader.load_stage`: answers go
through the method's inference routing and the model's own chat template, as in evaluation.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from .errors import CvitError, UsageError
from .types import Turn

HELP = """\
commands:
  /image PATH   start a new conversation about the image at PATH (/image none: no image)
  /reset        forget the conversation (the image stays)
  /stage N      load stage N of the run (0 = the untrained model) and start over
  /prompt       show the prompt the last answer was generated from
  /tokens N     limit answers to N new tokens
  /help         this text
  /quit         leave (or Ctrl-D)
End a line with \\ to continue the message on the next line. Ctrl-C stops an answer while
it is being written; at the prompt it leaves."""


def register(cli: Any) -> argparse.ArgumentParser:
    """Add ``chat`` (``cli``: the main CLI's ``CommandGroups`` or an argparse sub-parser set)."""
    parser = cli.add_parser(
        "chat",
        help="talk to the model of any stage of a run",
        description="Ask questions about images to a run's model after a stage, with the "
        "method's inference routing and the model's chat template, as in evaluation. "
        "Interactive on a terminal (type /help); --prompt asks one question and prints the "
        "answer; with standard input not a terminal each line is the next message and each "
        "answer is printed on one line.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (cvit-bench run --out)")
    parser.add_argument(
        "--stage",
        type=int,
        default=None,
        help="0 for the untrained model, t for the model after stage t (default: the last "
        "finished stage)",
    )
    parser.add_argument("--image", metavar="PATH", help="the image the conversation is about")
    parser.add_argument(
        "--prompt", metavar="TEXT", help="ask this one question, print the answer and exit"
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="N",
        help="answer length limit in tokens (default: the run's eval.max_new_tokens, else 256)",
    )
    parser.add_argument(
        "--cache-dir", metavar="DIR", help="the run's cache directory, when it has moved"
    )
    parser.add_argument(
        "--data-root", metavar="DIR", help="the benchmark's data, when it has moved"
    )
    parser.set_defaults(func=run)
    return parser


class ChatSession:
    """A conversation with one loaded stage: the image, the exchanges so far, the commands."""

    def __init__(
        self,
        load: Callable[[int | None], Any],
        stage: int | None,
        image: str | None,
        max_new_tokens: int | None,
        out: TextIO,
        notes: TextIO | None = None,
    ) -> None:
        self.load = load
        self.notes = notes or out
        self.loaded = load(stage)
        self.image: str | None = None
        self.history: list[Turn] = []
        self.last_prompt: str | None = None
        self.max_new_tokens = max_new_tokens
        self.out = out
        if image:
            self.set_image(image)

    def set_image(self, path: str | None) -> None:
        """Check that ``path`` is an image the model reads, then start over with it."""
        if path is not None:
            path = os.path.abspath(os.path.expanduser(path))
            if not os.path.isfile(path):
                raise UsageError(f"no image file {path}")
            pixel_values = getattr(self.loaded.model, "pixel_values", None)
            if pixel_values is not None:
                pixel_values(path)  # raises DataError naming the file when it does not decode
        self.image = path
        self.reset()

    def reset(self) -> None:
        self.history = []
        self.last_prompt = None

    def ask(self, question: str, on_text: Callable[[str], None] | None = None) -> str:
        """Answer ``question``; the exchange joins the history once the answer is complete."""
        prompt = self.loaded.prompt(question, self.image, self.history)
        answer = self.loaded.answer(
            question,
            image=self.image,
            history=self.history if self.loaded.supports_history else (),
            max_new_tokens=self.max_new_tokens,
            on_text=on_text,
        )
        self.last_prompt = prompt
        if self.loaded.supports_history:
            self.history.append(Turn(question, answer))
        return answer

    def command(self, line: str) -> bool:
        """Run a ``/command``; False when the session should end."""
        try:
            words = shlex.split(line[1:])
        except ValueError as exc:
            raise UsageError(f"cannot parse {line!r}: {exc}") from None
        name, args = (words[0].lower(), words[1:]) if words else ("help", [])
        if name in ("quit", "exit", "q"):
            return False
        if name in ("help", "h", "?"):
            self.say(HELP)
        elif name == "image":
            if not args:
                self.say(f"image: {self.image or 'none'}")
            else:
                path = " ".join(args)
                self.set_image(None if path.lower() == "none" else path)
                self.note(f"image: {self.image or 'none'} (new conversation)")
        elif name == "reset":
            self.reset()
            self.note("new conversation")
        elif name == "stage":
            if len(args) != 1 or not args[0].isdigit():
                raise UsageError("/stage takes a stage number, e.g. /stage 2")
            image = self.image
            self.note(f"loading stage {args[0]} ...")
            self.loaded = self.load(int(args[0]))
            self.set_image(image)
            self.note(self.loaded.describe())
        elif name == "tokens":
            if len(args) != 1 or not args[0].isdigit() or int(args[0]) < 1:
                raise UsageError("/tokens takes a positive number of tokens, e.g. /tokens 64")
            self.max_new_tokens = int(args[0])
            self.note(f"answers stop after {self.max_new_tokens} new tokens")
        elif name == "prompt":
            self.say(self.last_prompt if self.last_prompt is not None else "(nothing asked yet)")
        else:
            raise UsageError(f"unknown command /{name}; /help lists the commands")
        return True

    def say(self, text: str) -> None:
        """What the user asked for (answers, /prompt, /help)."""
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """Status (new conversation, stage loaded): kept out of piped answers."""
        self.notes.write(text + "\n")
        self.notes.flush()


def messages(read_line: Callable[[str], str]) -> Iterator[str]:
    """Messages from lines; a line ending in a backslash continues on the next one.
    Ends at end of input (``read_line`` raises ``EOFError``: Ctrl-D on a terminal)."""
    while True:
        try:
            line = read_line("USER> ")
            while line.endswith("\\"):
                line = line[:-1] + "\n" + read_line("...> ")
        except EOFError:
            return
        yield line.strip()


def run(args: argparse.Namespace) -> int:
    import warnings

    from .stage_loader import load_stage

    # deprecation notices of the model libraries would land in the middle of the conversation
    warnings.filterwarnings("ignore", category=FutureWarning)

    def load(stage: int | None) -> Any:
        return load_stage(args.run_dir, stage, cache_dir=args.cache_dir, data_root=args.data_root)

    out = sys.stdout
    interactive = args.prompt is None and sys.stdin.isatty()
    if interactive:
        print(f"loading {args.run_dir} ...", file=sys.stderr, flush=True)
    notes = sys.stdout if interactive else sys.stderr
    try:
        session = ChatSession(load, args.stage, args.image, args.max_new_tokens, out, notes)
    except KeyboardInterrupt:
        print("cvit-bench chat: interrupted while loading", file=sys.stderr)
        return 130
    if interactive:
        return _interactive(session)
    try:
        if args.prompt is not None:
            session.say(session.ask(args.prompt))
            return 0
        return _read_lines(session, sys.stdin)
    except KeyboardInterrupt:
        print("cvit-bench chat: interrupted", file=sys.stderr)
        return 130


def _read_lines(session: ChatSession, stream: TextIO) -> int:
    """Each non-empty line is the next message (or a /command); answers one per line."""

    def read_line(prompt: str) -> str:
        line = stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    status = 0
    for line in messages(read_line):
        if not line:
            continue
        try:
            if line.startswith("/"):
                if not session.command(line):
                    break
                continue
            session.say(session.ask(line).replace("\r", " ").replace("\n", " "))
        except CvitError as exc:
            print(f"cvit-bench chat: error: {exc}", file=sys.stderr)
            status = exc.exit_code
    return status


def _interactive(session: ChatSession) -> int:
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:  # pragma: no cover - not on every platform
        pass
    session.say(session.loaded.describe())
    session.say(f"image: {session.image or 'none'}; /help lists the commands, Ctrl-D leaves")
    try:
        for line in messages(input):
            if line and not _turn(session, line):
                break
        else:
            session.out.write("\n")  # after Ctrl-D
    except KeyboardInterrupt:  # at the prompt, or a second one while an answer was stopping
        session.out.write("\n")
    session.out.flush()
    return 0


def _turn(session: ChatSession, line: str) -> bool:
    """One message or command; False when the session should end."""
    out = session.out
    answering = False
    try:
        if line.startswith("/"):
            return session.command(line)
        # set before the prompt is shown: a Ctrl-C that arrives as soon as it is seen still
        # stops an answer (and Python may raise it between any two statements)
        answering = True
        out.write("ASSISTANT> ")
        out.flush()

        def show(piece: str) -> None:
            out.write(piece)
            out.flush()

        if not session.ask(line, on_text=show):
            out.write("(empty answer: the model ended at once)")
        out.write("\n")
    except KeyboardInterrupt:
        out.write(
            "\n[stopped; the unfinished answer is not kept]\n" if answering else "\n[stopped]\n"
        )
    except CvitError as exc:
        out.write(f"error: {exc}\n")
    out.flush()
    return True
