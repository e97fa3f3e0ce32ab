"""``storegw provision kiosk add|revoke|list`` as a technician runs them, and the token it
prints really is a kiosk-bound token of the API's store."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

from gateway.api.auth import TokenStore
from storegw.cli import app
from tests.support.config import write_config

runner = CliRunner()
KIOSK_DEVICES = [{"id": "kiosk-1-scanner", "kind": "scanner", "port": "/dev/null"}]


def test_add_prints_the_token_once_list_never_does_revoke_ends_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, devices=KIOSK_DEVICES, api={"listen": "127.0.0.1:8480"})
    c = ["-c", str(config)]
    result = runner.invoke(
        app, ["provision", "kiosk", "add", "kiosk-1", "-d", "kiosk-1-scanner", *c]
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:8480/kiosk/#token=sgw_")
    token = url.split("#token=")[1]
    store = TokenStore(tmp_path / "data" / "api-tokens.db")
    client = store.lookup_client(token)
    assert client is not None
    assert client.kiosk == "kiosk-1"
    written = tomllib.loads(config.read_text())
    assert written["kiosks"] == [
        {"name": "kiosk-1", "language": "zh", "devices": ["kiosk-1-scanner"]}
    ]
    assert (tmp_path / "storegw.toml.bak").exists()

    listed = runner.invoke(app, ["provision", "kiosk", "list", *c])
    assert listed.exit_code == 0
    assert "kiosk-1\tkiosk-1-scanner\tzh\tkiosk-1-page (" in listed.stdout
    assert token not in listed.output
    json_list = runner.invoke(app, ["provision", "kiosk", "list", "--json", *c])
    assert token not in json_list.output
    assert "hash" not in json_list.output

    again = runner.invoke(app, ["provision", "kiosk", "add", "kiosk-1", *c])
    assert again.exit_code == 1
    assert "revoke it first" in again.stderr
    assert "Traceback" not in again.output

    revoked = runner.invoke(app, ["provision", "kiosk", "revoke", "kiosk-1", *c])
    assert revoked.exit_code == 0
    assert store.lookup_client(token) is None
    fresh = runner.invoke(app, ["provision", "kiosk", "add", "kiosk-1", *c])
    assert fresh.exit_code == 0
    assert fresh.stdout.strip().splitlines()[-1].split("#token=")[1] != token


def test_mistakes_are_messages_and_leave_the_config_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path, devices=KIOSK_DEVICES, api={"listen": "127.0.0.1:8480"})
    before = config.read_text()
    c = ["-c", str(config)]
    bad = runner.invoke(app, ["provision", "kiosk", "add", "kiosk-2", "-d", "ghost", *c])
    assert bad.exit_code == 1
    assert "ghost" in bad.stderr
    assert config.read_text() == before
    none = runner.invoke(app, ["provision", "kiosk", "revoke", "nobody", *c])
    assert none.exit_code == 1
    assert "no token is bound" in none.stderr
    assert "Example" in runner.invoke(app, ["provision", "kiosk", "add", "--help"]).stdout
