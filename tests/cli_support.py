"""`vram ARGS...` run in-process for tests that call it as a plain function (the `run_cli` fixture in conftest.py
is the same for tests that take fixtures)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from vram.cli import main


def call_cli(argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr); argparse's own exits become the status, as in the real program."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()
