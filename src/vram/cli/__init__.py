"""The `vram` command line: thin adapters over the library. Each command group is its own module with a
`register(subparsers)` function; library errors become one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import VramError

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from typing import Any, NoReturn

# command modules, imported lazily so `vram estimate --json` starts fast
COMMAND_MODULES = ("estimate", "catalog", "fit", "plan", "local", "measure", "serve", "admin", "explain", "mcp")


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil (argparse builds a formatter for every
    add_argument call, and shutil with its imports is a few milliseconds of a cold start)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout at the terminal's width, found as argparse finds it but without shutil."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, width=width if width is not None else _terminal_columns() - 2
        )


class _Parser(argparse.ArgumentParser):
    """No abbreviations: a prefix such as `--gpu-mem` must never be taken silently for another option (and `--gpu`
    is an option of its own beside `--gpus` and `--gpu-memory-utilization`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # one line, exit 2, like library errors
        self.exit(2, f"vram: error: {message}\n")


# which module registers each command (so one command's parser is built without importing the others)
COMMAND_OWNERS = {
    "estimate": "estimate",
    "models": "catalog",
    "gpus": "catalog",
    "fit": "fit",
    "which": "fit",
    "compare": "fit",
    "plan": "plan",
    "local": "local",
    "measure": "measure",
    "serve": "serve",
    "admin": "admin",
    "explain": "explain",
    "mcp": "mcp",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or only the module that registers `command` (fast path for a known command)."""
    from .. import __version__

    parser = _Parser(prog="vram", description="Will it fit? GPU memory for inference and training of open models.")
    parser.add_argument("--version", action="version", version=f"vram {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    owner = COMMAND_OWNERS.get(command or "")
    for name in (owner,) if owner else COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__name__}.{name}"):
                continue  # command group not present in this build
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:  # without building any command's parser
        from .. import __version__

        print(f"vram {__version__}")
        return 0
    parser = build_parser(args_list[0] if args_list else None)
    if not args_list:
        parser.print_help()
        return 0
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except VramError as exc:
        print(f"vram: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vram: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(rc or 0)


# commands whose process lives on (servers) or runs long work (measuring on a GPU): they keep the cyclic garbage
# collector running
LONG_RUNNING = frozenset({"serve", "mcp", "measure"})


def run() -> NoReturn:
    """The console script `vram`. A short command's process ends as soon as it has answered, so the cyclic garbage
    collector is paused for it: during the imports it would walk the same start-up objects again and again (class
    and function objects, none of them garbage), and whatever is alive at the end is frozen so the interpreter's
    exit does not walk it once more. Memory freed by reference counting is freed as usual; long-running commands
    (LONG_RUNNING) keep the collector. `main` itself leaves the collector alone (tests and callers run it
    in-process)."""
    import gc

    argv = sys.argv[1:]
    if not argv or argv[0] not in LONG_RUNNING:
        gc.disable()
    rc = main(argv)
    gc.freeze()
    sys.exit(rc)


if __name__ == "__main__":
    run()
