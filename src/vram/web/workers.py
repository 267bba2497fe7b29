"""Several `vram serve` worker processes, each accepting on its own SO_REUSEPORT socket (Linux).

uvicorn's own supervisor binds one socket that every worker accepts from. Under a burst of new keep-alive
connections the worker that happens to be waiting in accept() takes most of them (seen: 61 of 64 connections on one
of two workers), and a keep-alive client stays where it landed, so one worker works while the other idles. With one
listening socket per worker bound with SO_REUSEPORT, the kernel spreads new connections over the sockets by a hash
of their addresses instead. The parent holds a bound (not listening) socket on the port from the start, so a port
in use fails at once, and restarts a worker that dies.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

# a worker that dies within this many seconds of its start counts as failing to start; this many such in a row stop
# the server rather than restart it forever
QUICK_DEATH_S = 5.0
QUICK_DEATHS_TO_GIVE_UP = 3
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def reuseport_available() -> bool:
    """SO_REUSEPORT balances connections across listening sockets on Linux only (elsewhere it does not, or is
    missing)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _socket(host: str, port: int, *, reuseport: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _claim(host: str, port: int) -> socket.socket:
    """The parent's hold on the port. A plain bind first: a reuseport socket would join another server's group of
    listeners on the same port (another `vram serve --workers N` of this user) and split its traffic silently,
    where the port is in use and that is an error."""
    with _socket(host, port, reuseport=False) as plain:
        port = int(plain.getsockname()[1])  # port 0: the one the system chose
    return _socket(host, port)


def _follow_parent(parent: int) -> None:
    """Linux: this process gets SIGTERM when the supervisor dies, even by SIGKILL (PR_SET_PDEATHSIG), so no worker
    is left serving the port without it; if it died already, SIGTERM now."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(app: str, host: str, port: int, options: dict[str, Any], parent: int) -> None:
    import uvicorn

    _follow_parent(parent)
    sock = _socket(host, port)
    sock.listen(2048)
    config = uvicorn.Config(app, factory=True, host=host, port=port, **options)
    uvicorn.Server(config).run(sockets=[sock])


def serve(app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Run `workers` processes serving the app factory `app` on host:port until SIGINT / SIGTERM; the exit status."""
    try:
        probe = _claim(host, port)  # holds the port for this server's reuseport group; fails now if it is taken
    except OSError as exc:
        print(f"vram: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = int(probe.getsockname()[1])  # for every worker
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def start() -> tuple[BaseProcess, float]:
        p = ctx.Process(target=_worker, args=(app, host, port, options, os.getpid()), name="vram-serve-worker")
        p.start()
        return p, time.monotonic()

    procs = [start() for _ in range(workers)]
    quick_deaths, status = 0, 0
    try:
        while not stop.wait(0.5):
            for i, (p, started) in enumerate(procs):
                if p.is_alive():
                    continue
                quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH_S else 0
                if quick_deaths >= QUICK_DEATHS_TO_GIVE_UP:
                    print(
                        f"vram: workers exit at start ({quick_deaths} in a row, last status {p.exitcode}); stopping",
                        file=sys.stderr,
                    )
                    status = 1
                    stop.set()
                    break
                print(f"vram: worker {p.pid} exited ({p.exitcode}); starting another", file=sys.stderr)
                procs[i] = start()
    finally:
        for p, _ in procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + STOP_GRACE_S
        for p, _ in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
        probe.close()
        for s, h in previous.items():
            signal.signal(s, h)
    return status
