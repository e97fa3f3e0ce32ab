"""A real Mosquitto broker on a free loopback port, for tests, the demo and the bench.

It can be stopped, killed and restarted on the same port to stage outages. Where Mosquitto is
not installed, :class:`EmbeddedBroker` runs amqtt in-process (MQTT 3.1.1 only) so the demo
still works with pip alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from simulators import spawn

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for candidate in (shutil.which("mosquitto"), *MOSQUITTO_PATHS):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    """Something accepts TCP connections on loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class MosquittoBroker:
    """``with MosquittoBroker() as broker:`` -> ``broker.url`` is mqtt://127.0.0.1:PORT."""

    def __init__(
        self,
        port: int | None = None,
        *,
        extra_config: str = "",
        workdir: Path | None = None,
        binary: str | None = None,
        persistence: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.die_with_parent = die_with_parent
        """Arm PR_SET_PDEATHSIG (simulators.spawn): the broker ends even when we are killed.
        The thread that starts it must live as long as it (use :meth:`astart` from asyncio)."""
        self.persistence = persistence
        """Keep retained messages and persistent sessions across a graceful restart."""
        self.extra_config = extra_config
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="storegw-mosquitto-"))
        self.binary = binary or find_mosquitto()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def config_file(self) -> Path:
        return self.workdir / "mosquitto.conf"

    def _write_config(self) -> Path:
        conf = self.config_file
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"{user}"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            + (
                f"persistence true\npersistence_location {self.workdir}/\n"
                if self.persistence
                else "persistence false\n"
            )
            + f"log_dest file {self.log_file}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            "max_inflight_messages 0\n"
            "max_queued_messages 0\n"
            "set_tcp_nodelay true\n"  # as deploy/mosquitto/storegw.conf: small RPCs, no Nagle
            f"{self.extra_config}\n"
        )
        return conf

    def _launch(self) -> subprocess.Popen[bytes] | None:
        """Start the process (no waiting); None when it already runs."""
        if self.binary is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        if self.proc is not None and self.proc.poll() is None:
            return None
        argv = [self.binary, "-c", str(self._write_config())]
        self.proc = subprocess.Popen(
            spawn.command(argv) if self.die_with_parent else argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return self.proc

    def _listening(self, proc: subprocess.Popen[bytes], started: float, timeout: float) -> bool:
        if port_open(self.port):
            return True
        if proc.poll() is not None:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {log[-2000:]}")
        if time.monotonic() - started > timeout:
            self.kill()
            raise TimeoutError(f"mosquitto did not listen on {self.port} within {timeout}s")
        return False

    def start(self, timeout: float = 10.0) -> None:
        started = time.monotonic()
        proc = self._launch()
        while proc is not None and not self._listening(proc, started, timeout):
            time.sleep(0.01)

    async def astart(self, timeout: float = 10.0) -> None:
        """:meth:`start` without blocking the event loop; the loop's thread is the parent."""
        started = time.monotonic()
        proc = self._launch()
        while proc is not None:
            if self._listening(proc, started, timeout):
                return
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        """Graceful stop (SIGTERM): clients see the connection close."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt stop (SIGKILL), like a crashed broker or a pulled cable at the broker side."""
        self._signal(signal.SIGKILL)

    def save(self) -> None:
        """Have the broker write its persistence snapshot now (SIGUSR1), as the shipped
        storegw-broker-save.service does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)

    def _signal(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class EmbeddedBroker:
    """amqtt in this process: MQTT 3.1.1 only, for the demo where Mosquitto is missing."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._broker: object | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        broker = Broker(config)
        await broker.start()
        self._broker = broker

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.shutdown()  # type: ignore[attr-defined]

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
