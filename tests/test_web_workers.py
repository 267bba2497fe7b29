"""`vram serve --workers N` on Linux: one SO_REUSEPORT listening socket per worker (vram.web.workers).

Real processes on a real port: connections spread over the workers, a dead worker is replaced, SIGTERM stops them
all, a port in use is a one-line error."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from test_web_support import REDIS_URL, redis_available

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"),
    pytest.mark.skipif(not redis_available(), reason="Redis (127.0.0.1:6379) is not running"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def _workers(pid: int) -> list[int]:
    """The server's worker processes (multiprocessing's spawn also starts a resource tracker, which is not one)."""
    return [c for c in _children(pid) if "resource_tracker" not in Path(f"/proc/{c}/cmdline").read_text()]


def _established_by_pid(pids: list[int], port: int) -> dict[int, int]:
    """Established connections on local `port` that each process holds (its socket inodes in /proc/net/tcp)."""
    inodes: dict[str, int] = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "01":  # local port; state ESTABLISHED
            inodes[f[9]] = 0
    out = {}
    for pid in pids:
        n = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    n += 1
        out[pid] = n
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VRAM_", "STRIPE_"))}
    env.update(
        VRAM_DATA_DIR=str(tmp_path),
        VRAM_REDIS_URL=REDIS_URL,
        VRAM_REDIS_PREFIX=f"workers-{os.getpid()}-{port}:",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vram", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200 and (
                len(_workers(proc.pid)) == 2
            ):
                break
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    try:
        yield proc, port, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait_for_listeners(port: int, n: int, timeout: float = 30.0) -> None:
    """Until `n` sockets listen on `port` (state 0A in /proc/net/tcp)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [ln.split() for ln in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        if sum(1 for f in rows if int(f[1].split(":")[1], 16) == port and f[3] == "0A") >= n:
            return
        assert time.monotonic() < deadline, f"fewer than {n} listeners on {port}"
        time.sleep(0.05)


def test_connections_spread_over_the_workers(server: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    proc, port, _ = server
    workers = _workers(proc.pid)
    _wait_for_listeners(port, 2)
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
    try:
        deadline = time.monotonic() + 10
        while True:
            held = _established_by_pid(workers, port)
            if sum(held.values()) == 64 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sum(held.values()) == 64, held
        # the kernel hashes each connection to one of the two sockets: fewer than 16 of 64 on one happens with a
        # probability of about 3e-5; with one shared socket a burst of connections mostly lands on one worker
        assert min(held.values()) >= 16, held
    finally:
        for c in conns:
            c.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(server: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    proc, port, log = server
    first, second = _workers(proc.pid)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        now = _workers(proc.pid)
        if len(now) == 2 and first not in now:
            break
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    assert second in now
    _wait_for_listeners(port, 2)
    for _ in range(20):  # every connection is answered, whichever socket it lands on
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert f"worker {first} exited" in log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    for pid in now:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def _refused(port: int, data_dir: Path) -> None:
    """`vram serve --workers 2` on `port` stops at once with the one-line error, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VRAM_", "STRIPE_"))}
    env.update(VRAM_DATA_DIR=str(data_dir), VRAM_REDIS_URL=REDIS_URL)
    r = subprocess.run(
        [sys.executable, "-m", "vram", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"vram: cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        _refused(taken.getsockname()[1], tmp_path)


def test_a_second_server_on_the_port_is_refused_not_joined(
    server: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path
) -> None:
    proc, port, _ = server
    _refused(port, tmp_path / "other")
    assert proc.poll() is None and len(_workers(proc.pid)) == 2  # the first server goes on, alone on its port


def test_workers_stop_when_the_supervisor_is_killed(server: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    proc, port, _ = server
    workers = _workers(proc.pid)
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)  # the supervisor alone: no chance to stop its workers itself
    proc.wait(10)
    deadline = time.monotonic() + 20
    while any(
        Path(f"/proc/{w}").exists() and "zombie" not in Path(f"/proc/{w}/status").read_text().lower() for w in workers
    ):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.1)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
