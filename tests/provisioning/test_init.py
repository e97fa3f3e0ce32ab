"""``storegw provision init`` as a technician uses it: flags, prompts on a real pty, mistakes."""

from __future__ import annotations

import os
import re
import select
import signal
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner, Result

from gateway.config import load_config
from gateway.wire.certs import common_name, fingerprint, load_private_key
from simulators.pki import Authority, write_cert
from storegw.cli import app
from tests.support.paths import REPO

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def init(
    tmp: Path, *extra: str, store: str = "S001", url: str = "mqtts://mqtt.example.com:8883"
) -> Result:
    args = ["provision", "init", "-c", str(tmp / "storegw.toml"), "--store", store]
    args += ["--gateway", "gw-1", "--url", url, "--data-dir", str(tmp / "data"), *extra]
    return CliRunner().invoke(app, args)


def no_secret_in(text: str, key_path: Path) -> None:
    assert "PRIVATE KEY" not in text
    pem = key_path.read_text()
    body = "".join(pem.splitlines()[1:-1])
    for i in range(0, len(body) - 24, 24):  # no 24-character run of the key's base64 either
        assert body[i : i + 24] not in text.replace("\n", "")


def test_flags_write_a_valid_config_an_owner_only_key_and_a_matching_csr(tmp_path: Path) -> None:
    result = init(tmp_path)
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "storegw.toml")  # what the daemon will read
    assert (cfg.gateway.store_id, cfg.gateway.gateway_id) == ("S001", "gw-1")
    assert cfg.mqtt.url == "mqtts://mqtt.example.com:8883"
    assert cfg.mqtt.cert_file is None  # nothing to present until the cloud signed the CSR

    tls = tmp_path / "data" / "tls"
    key_path, csr_path = tls / "gateway.key", tls / "gateway.csr"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    key = load_private_key(key_path)
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid
    assert common_name(csr.subject) == "S001/gw-1"
    assert fingerprint(csr.public_key()) == fingerprint(key)

    assert "S001/gw-1" in result.output
    assert fingerprint(key) in result.output  # so the technician can compare with the cloud
    assert "\x1b[" not in result.output  # not a terminal: plain text
    no_secret_in(result.output, key_path)


def test_the_key_is_0600_from_creation_whatever_the_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_chmod(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the key's mode must come from os.open, not a chmod afterwards")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(os, "fchmod", no_chmod)
    old = os.umask(0)
    try:
        result = init(tmp_path)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "data" / "tls" / "gateway.key").stat().st_mode) == 0o600


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_init_creates_the_data_dir_0750_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        result = init(tmp_path)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o750


def test_init_closes_an_existing_world_readable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    os.chmod(tmp_path / "data", 0o755)
    assert init(tmp_path).exit_code == 0
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o750


def test_nothing_is_overwritten_without_force(tmp_path: Path) -> None:
    assert init(tmp_path).exit_code == 0
    key_path = tmp_path / "data" / "tls" / "gateway.key"
    key_before = key_path.read_bytes()
    config = tmp_path / "storegw.toml"
    with config.open("a") as f:  # the technician added a device meanwhile
        f.write('\n[[devices]]\nid = "scanner-1"\nkind = "scanner"\nport = "/dev/ttyACM0"\n')
    again = init(tmp_path, store="S002")
    assert again.exit_code == 1
    assert "--force" in again.output
    assert "Traceback" not in again.output
    assert key_path.read_bytes() == key_before
    assert load_config(config).gateway.store_id == "S001"

    forced = init(tmp_path, "--force", store="S002")
    assert forced.exit_code == 0, forced.output
    assert key_path.read_bytes() != key_before  # a new identity: enrol again
    cfg = load_config(config)
    assert cfg.gateway.store_id == "S002"
    assert [d.id for d in cfg.devices] == ["scanner-1"]  # the rest of the file is kept
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("extra", "store", "url", "code", "message"),
    [
        ((), "S 001", "mqtts://h:8883", 2, "Invalid value for '--store'"),
        ((), "S001", "https://h", 2, "mqtts://host:port"),
        ((), "S001", "mqtts://h:99999", 2, "port"),
        ((), "S001", "mqtt://mqtt.example.com", 1, "mqtt.url: plain mqtt:// is refused"),
        (("--ca-file", "/nonexistent/ca.pem"), "S001", "mqtts://h:8883", 1, "cannot read the CA"),
    ],
)
def test_mistakes_get_a_message_and_no_traceback(
    tmp_path: Path, extra: tuple[str, ...], store: str, url: str, code: int, message: str
) -> None:
    result = init(tmp_path, *extra, store=store, url=url)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "storegw.toml").exists()
    assert not (tmp_path / "data" / "tls" / "gateway.key").exists()


def test_a_ca_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    result = init(tmp_path, "--ca-file", str(bogus))
    assert result.exit_code == 1
    assert "holds no PEM certificate" in result.output


def test_help_has_an_example_and_the_main_help_lists_provision() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert "provision" in top.output
    for command in ("init", "enroll", "renew"):
        helped = runner.invoke(app, ["provision", command, "--help"])
        assert helped.exit_code == 0, helped.output
        assert "Example" in helped.output
        assert "storegw provision " + command in helped.output


# --- interactive, on a real pseudo-terminal -------------------------------------------------


class Terminal:
    """``python -m storegw provision init`` with a pty as its controlling terminal."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        env = dict(os.environ, COLUMNS="120", TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storegw", "provision", "init", *args],
            cwd=REPO,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 15.0) -> str:
        """Read until ``text`` shows up (ANSI codes ignored); fail at the deadline."""
        deadline = time.monotonic() + timeout
        while text not in ANSI.sub("", self.seen.decode(errors="replace")):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {text!r}; saw {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {text!r}; saw {self.seen!r}")
                self.seen += chunk
        return ANSI.sub("", self.seen.decode(errors="replace"))

    def answer(self, prompt: str, value: str) -> None:
        self.expect(prompt)
        self.seen = b""  # the next expect() looks at what follows this answer only
        os.write(self.master, value.encode() + b"\r")

    def drain(self, timeout: float = 15.0) -> str:
        """Everything until the child exits and closes the terminal."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the command did not finish; saw {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        return self.seen.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        os.close(self.master)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    try:
        yield started
    finally:
        for t in started:
            t.close()


def test_init_asks_a_technician_on_a_terminal(tmp_path: Path, terminal: list[Terminal]) -> None:
    ca = tmp_path / "ca.pem"
    write_cert(Authority.create().cert, ca)
    config = tmp_path / "etc" / "storegw.toml"
    t = Terminal("-c", str(config), "--ca-file", str(ca))
    terminal.append(t)

    t.answer("Store id:", "S 001")  # a typo: asked again, with the rule
    t.answer("Store id:", "S001")
    t.answer("Gateway id:", "gw-1")
    t.answer("Broker URL (mqtts://host:8883):", "mqtts://mqtt.example.com:8883")
    t.answer("Data directory [/var/lib/storegw]:", str(tmp_path / "data"))
    raw = t.drain()
    assert t.proc.wait(timeout=10) == 0, raw
    text = ANSI.sub("", raw)

    assert "gateway initialised" in text
    assert "S001/gw-1" in text
    assert "\x1b[" in raw  # a terminal gets colour (and a table)
    assert "Traceback" not in text

    key_path = tmp_path / "data" / "tls" / "gateway.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    no_secret_in(text, key_path)
    cfg = load_config(config)
    assert cfg.gateway.store_id == "S001"
    assert cfg.mqtt.ca_file == ca
    data = tomllib.loads(config.read_text())
    assert set(data) == {"gateway", "mqtt"}
    assert serialization.load_pem_private_key(key_path.read_bytes(), None) is not None


def test_the_typo_is_explained_on_the_terminal(tmp_path: Path, terminal: list[Terminal]) -> None:
    t = Terminal("-c", str(tmp_path / "storegw.toml"))
    terminal.append(t)
    t.answer("Store id:", "S/001")
    seen = t.expect("Store id:")  # asked again ...
    assert "letters, digits" in seen  # ... saying why
