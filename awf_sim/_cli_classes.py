"""What both of awf's CLIs (awf-sim and awf-deploy) are made of: their command and group
classes (readable help, one-line usage errors), exit codes and `--version`."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "FLAG", "Command", "Group", "show_version"]

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
        one line on stderr, then exit. awf-deploy also gives it to --json (its own Group)."""
        typer.echo(line, err=True)
        sys.exit(code)


def show_version(prog: str) -> NoReturn:
    """`PROG --version` of both CLIs: the installed awf's version, then exit 0."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        typer.echo(f"{prog} {version('awf')}")
    except PackageNotFoundError:  # run from a source tree that was never installed
        typer.echo(f"{prog} (version unknown: not installed)")
    raise typer.Exit(EXIT_OK)
