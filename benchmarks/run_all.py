#!/usr/bin/env python3
"""Run every benchmarks/bench_*.py with this interpreter, one after another, each with its default settings.

    .venv/bin/python benchmarks/run_all.py            # or: make bench
    .venv/bin/python benchmarks/run_all.py estimate   # only the benchmarks whose file name contains "estimate"

Exit status is that of the first benchmark that failed (0 if none did).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    status = 0
    benches = [b for b in sorted(HERE.glob("bench_*.py")) if not argv or any(a in b.stem for a in argv)]
    if not benches:
        print("no benchmarks found", file=sys.stderr)
        return 1
    for bench in benches:
        print(f"== {bench.name}", flush=True)
        rc = subprocess.run([sys.executable, str(bench)], cwd=HERE.parent).returncode
        if rc and not status:
            status = rc
        print(flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
