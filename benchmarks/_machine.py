"""The machine a benchmark ran on, described the same way in every results table."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine(load: bool = False) -> str:
    cpu = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    return text + (f", load average {os.getloadavg()[0]:.1f}" if load else "")
