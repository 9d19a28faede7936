"""What both of awf's CLIs (awf-sim and awf-deploy) are made of: their command and group
classes (readable help, one-line usage errors), exit codes and `--version`."""

from __future__ import annotations

import json
import mmap
import sys
from typing import Any, NoReturn, TextIO

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FLAG",
    "Command",
    "Group",
    "JsonFailureGroup",
    "show_version",
    "wants_json",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# A flag takes no value: show none (typer would show "<bool>").
FLAG = " "


class _ReadableHelp:
    """typer 0.29 prints a type placeholder (`<bool>`, `<str>`) beside every flag, argument
    and its own `--help`. A flag takes no value and an argument's name already says what it
    is, so show neither; options with a value carry their own metavar (NAME, JSON, FILE).
    It also keeps a docstring's line breaks, which end lines mid-sentence once the terminal
    wraps them again: a paragraph is printed as one flowing text."""

    help: str | None  # click's Command's and Group's

    def format_help(self, ctx: Any, formatter: Any) -> None:
        help_text = self.help
        if help_text:
            self.help = "\n\n".join(" ".join(p.split()) for p in help_text.split("\n\n"))
        super().format_help(ctx, formatter)  # type: ignore[misc]

    def get_params(self, ctx: Any) -> list[Any]:
        params: list[Any] = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            if isinstance(param, TyperArgument):
                param.display_type_rich = _no_type  # type: ignore[method-assign]
            elif getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = FLAG
        return params


def _no_type(ctx: Any) -> None:
    return None


class Command(_ReadableHelp, TyperCommand):
    """The command class of awf's CLIs (awf-sim and awf-deploy): `@app.command(cls=Command)`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            # click's parser raises "Option '--input' requires an argument" with no context,
            # and the line then pointed at `awf-sim --help` instead of this command's.
            if getattr(exc, "ctx", False) is None:
                exc.ctx = ctx  # type: ignore[attr-defined]
            raise


class Group(_ReadableHelp, TyperGroup):
    """The group class of awf's CLIs: `typer.Typer(cls=Group)`.

    A bad flag, a missing argument or an invalid option value is one line on stderr
    (`awf-sim chaos: Invalid value for '--seed': ...; see `awf-sim chaos --help``), exit 2,
    instead of click's usage banner and boxed error: scripts and CI logs read the first line."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Exception as exc:
            # By class name: typer 0.29 vendors click (typer._click), older typers use click.
            kinds = {cls.__name__ for cls in type(exc).__mro__}
            if "UsageError" in kinds and "NoArgsIsHelpError" not in kinds:
                ctx = getattr(exc, "ctx", None)
                where = ctx.command_path if ctx is not None else (self.name or "awf")
                message = " ".join(exc.format_message().split()).rstrip(".")  # type: ignore[attr-defined]
                self.failed("UsageError", f"{where}: {message}; see `{where} --help`", EXIT_USAGE)
            if "ClickException" in kinds:
                exc.show()  # type: ignore[attr-defined]
                sys.exit(exc.exit_code)  # type: ignore[attr-defined]
            if "Abort" in kinds:
                self.failed("Aborted", "Aborted!", EXIT_FAILED)
            raise
        sys.exit(code if isinstance(code, int) else 0)

    def failed(self, kind: str, line: str, code: int) -> NoReturn:
        """A failure click found before the command ran (`kind`: UsageError or Aborted): its
        one line on stderr, then exit. JsonFailureGroup also gives it to --json."""
        typer.echo(line, err=True)
        sys.exit(code)


def wants_json(argv: list[str]) -> bool:
    """Whether a command line asks for --json (before any `--`)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


class _Seen:
    """What the command's streams carried: whether stdout got anything, and the last stderr
    line naming the program (`awf-sim: ...`, `awf-sim chaos: ...`). In memory shared with the
    processes the command forks (chaos and replay run in a supervised child), so what a child
    printed counts too."""

    _SIZE = 4096

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, self._SIZE)  # anonymous, shared across fork

    @property
    def wrote(self) -> bool:
        return self._memory[0] == 1

    def mark_wrote(self) -> None:
        self._memory[0] = 1

    @property
    def last(self) -> str:
        size = int.from_bytes(self._memory[1:3], "big")
        return self._memory[3 : 3 + size].decode("utf-8", "replace")

    def set_last(self, line: str) -> None:
        data = line.encode("utf-8", "replace")[: self._SIZE - 3]
        self._memory[1:3] = len(data).to_bytes(2, "big")
        self._memory[3 : 3 + len(data)] = data


class _Tee:
    """A stream that passes everything on, telling `seen` what went through."""

    def __init__(self, stream: TextIO, seen: _Seen, prog: str | None) -> None:
        self.stream = stream
        self.seen = seen
        self.prog = prog  # stderr: keep the program's lines; stdout (None): note any write

    def write(self, text: str) -> int:
        if text:
            if self.prog is None:
                self.seen.mark_wrote()
            else:
                for line in text.splitlines():
                    if line.startswith(self.prog):
                        self.seen.set_last(line)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:  # isatty, flush, fileno, encoding, buffer ...
        return getattr(self.stream, name)


class JsonFailureGroup(Group):
    """The group of both CLIs (awf-sim and awf-deploy): given --json, a command prints one
    JSON object on stdout whatever happens. On a failure that printed none, the object is
    `failure(error)` (`{"ok": false, "error": {"kind", "message", "exit_code"}}`), beside the
    same line on stderr and the same exit code. `kind` is UsageError or Aborted (click's,
    before the command ran), BadInput (exit 2) or Failed; `message` is the last line the
    program said on stderr, without its `PROG: ` prefix. A subclass adds what its commands
    reported (awf-deploy: the error's own kind and hint, what was found before it)."""

    _seen: _Seen | None = None

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = [str(a) for a in (sys.argv[1:] if args is None else args)]
        if not standalone_mode or not wants_json(argv):
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        seen = self._seen = _Seen()
        out, err = sys.stdout, sys.stderr
        sys.stdout = _Tee(out, seen, None)
        # The commands' own lines: `awf-sim: ...`, whatever the program was called as.
        sys.stderr = _Tee(err, seen, f"{self.name or 'awf'}: ")
        self._kind: str | None = None
        try:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if code != EXIT_OK and not seen.wrote:
                kind = self._kind or ("BadInput" if code == EXIT_USAGE else "Failed")
                last = seen.last
                message = last.partition(": ")[2] or last
                error: dict[str, Any] = {"kind": kind, "message": message, "exit_code": code}
                failure = json.dumps(self.failure(error), ensure_ascii=False, default=str)
                out.write(failure + "\n")
                out.flush()
            raise
        finally:
            sys.stdout, sys.stderr = out, err
            self._seen = None

    def failure(self, error: dict[str, Any]) -> dict[str, Any]:
        """The object a failure prints under --json when the command printed none; `error`
        is what the group saw (kind, the stderr line's message, exit code)."""
        return {"ok": False, "error": error}

    def failed(self, kind: str, line: str, code: int) -> NoReturn:
        self._kind = kind
        if self._seen is not None:  # named by how the program was called: no prefix to look for
            self._seen.set_last(line)
        super().failed(kind, line, code)


def show_version(prog: str) -> NoReturn:
    """`PROG --version` of both CLIs: the installed awf's version, then exit 0."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"{prog} {version('awf')}")
    except PackageNotFoundError:  # run from a source tree that was never installed
        typer.echo(f"{prog} (version unknown: not installed)")
    raise typer.Exit(EXIT_OK)
