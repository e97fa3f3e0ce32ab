"""The processes of bench/fleet.py: forked workers and consumers steered over pipes."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


class Proc:
    """A forked worker or consumer and its end of the control pipe."""

    def __init__(self, target: Callable[[Any, Connection], None], spec: object) -> None:
        self.conn, child = mp.get_context("fork").Pipe()
        self.proc = mp.get_context("fork").Process(target=target, args=(spec, child))
        self.proc.start()
        child.close()

    def ask(self, *msg: object, timeout: float = 120.0) -> Any:
        self.conn.send(msg)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"no answer to {msg[0]!r} within {timeout}s")
        return self.conn.recv()

    def wait_ready(self, timeout: float = 120.0) -> None:
        if not self.conn.poll(timeout) or self.conn.recv() != "ready":
            raise RuntimeError("process did not start")

    def stop(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, EOFError):
            self.ask("stop", timeout=30)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def ask_all(procs: list[Proc], *msg: object) -> list[Any]:
    send_all(procs, *msg)
    return answers(procs)


def send_all(procs: list[Proc], *msg: object) -> None:
    for p in procs:
        p.conn.send(msg)


def answers(procs: list[Proc]) -> list[Any]:
    out = []
    for p in procs:
        if not p.conn.poll(300):
            raise TimeoutError("no answer from a worker")
        out.append(p.conn.recv())
    return out


def wait_for(what: str, cond: Callable[[], bool], timeout: float, every: float = 0.2) -> float:
    """Poll until ``cond()``; returns the time it became true, raises after ``timeout``."""
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(every)
    return time.time()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
