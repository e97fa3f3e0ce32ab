"""`storegw config check`: a technician fixes a broken file in one pass, guided by key paths."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from typer.testing import CliRunner, Result

from gateway.config import ConfigError, load_config
from storegw.cli import app

VALID: dict[str, Any] = {
    "gateway": {"store_id": "S001", "gateway_id": "gw-1", "data_dir": "/var/lib/storegw"},
    "mqtt": {"url": "mqtts://broker.example.com:8883", "username": "gw", "password": "s3cret"},
    "outbox": {"durability": "power-loss", "max_bytes": 1048576},
    "devices": [
        {"id": "scanner-1", "kind": "scanner", "port": "/dev/ttyACM0", "terminator": "CR"},
        {"id": "scanner-2", "kind": "scanner", "port": "/dev/ttyACM1", "baudrate": 115200},
    ],
}

Edit = Callable[[dict[str, Any]], None]


def write(tmp_path: Path, edit: Edit | None = None, name: str = "storegw.toml") -> Path:
    data = copy.deepcopy(VALID)
    if edit is not None:
        edit(data)
    path = tmp_path / name
    path.write_text(tomli_w.dumps(data))
    return path


def check(path: Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, ["config", "check", "-c", str(path)], env=env)


def problem_lines(result: Result) -> list[str]:
    return [line.strip() for line in result.output.splitlines() if line.startswith("  ")]


def assert_clean_failure(result: Result) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output


def test_a_valid_file_prints_ok_and_exits_0(tmp_path: Path) -> None:
    result = check(write(tmp_path))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output
    assert "S001" in result.output
    assert "2 device(s)" in result.output


def unknown_top(d: dict[str, Any]) -> None:
    d["colour"] = "blue"


def unknown_in_section(d: dict[str, Any]) -> None:
    d["outbox"]["max_byte"] = 1


def unknown_in_device(d: dict[str, Any]) -> None:
    d["devices"][1]["parity"] = "N"


def bad_store_id(d: dict[str, Any]) -> None:
    d["gateway"]["store_id"] = "S 001!"


def plain_mqtt_remote(d: dict[str, Any]) -> None:
    d["mqtt"]["url"] = "mqtt://10.1.2.3:1883"


def cert_without_key(d: dict[str, Any]) -> None:
    d["mqtt"]["cert_file"] = "/etc/storegw/client.pem"


def key_without_cert(d: dict[str, Any]) -> None:
    d["mqtt"]["key_file"] = "/etc/storegw/client.key"


def duplicate_ids(d: dict[str, Any]) -> None:
    d["devices"][1]["id"] = "scanner-1"


def unknown_kind(d: dict[str, Any]) -> None:
    d["devices"].append({"id": "printer-1", "kind": "printer"})


def missing_kind(d: dict[str, Any]) -> None:
    d["devices"].append({"id": "thing-1"})


def bad_baudrate(d: dict[str, Any]) -> None:
    d["devices"][0]["baudrate"] = "fast"


def negative_baudrate(d: dict[str, Any]) -> None:
    d["devices"][0]["baudrate"] = -9600


def tiny_outbox(d: dict[str, Any]) -> None:
    d["outbox"]["max_bytes"] = 1024


def missing_store_id(d: dict[str, Any]) -> None:
    del d["gateway"]["store_id"]


PROBLEMS: list[tuple[Edit, str, str]] = [
    (unknown_top, "colour", "unknown key"),
    (unknown_in_section, "outbox.max_byte", "unknown key"),
    (unknown_in_device, "devices[1].parity", "unknown key"),
    (bad_store_id, "gateway.store_id", "pattern"),
    (plain_mqtt_remote, "mqtt.url", "mqtt://"),
    (cert_without_key, "mqtt.key_file", "together"),
    (key_without_cert, "mqtt.cert_file", "together"),
    (duplicate_ids, "devices[1].id", "scanner-1"),
    (unknown_kind, "devices[2].kind", "printer"),
    (missing_kind, "devices[2].kind", "kind"),
    (bad_baudrate, "devices[0].baudrate", "integer"),
    (negative_baudrate, "devices[0].baudrate", "greater than 0"),
    (tiny_outbox, "outbox.max_bytes", "65536"),
    (missing_store_id, "gateway.store_id", "required"),
]


@pytest.mark.parametrize(("edit", "path", "words"), PROBLEMS, ids=[p[0].__name__ for p in PROBLEMS])
def test_each_problem_is_reported_with_its_key_path(
    tmp_path: Path, edit: Edit, path: str, words: str
) -> None:
    result = check(write(tmp_path, edit))
    assert_clean_failure(result)
    lines = problem_lines(result)
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"{path}: "), result.output
    assert words in lines[0], result.output


def test_every_problem_of_a_file_is_reported_in_one_pass(tmp_path: Path) -> None:
    """One run lists them all, so one visit to the store fixes the file."""
    edits: list[Edit] = [
        unknown_top,
        unknown_in_section,
        unknown_in_device,
        bad_store_id,
        plain_mqtt_remote,
        cert_without_key,
        duplicate_ids,
        unknown_kind,
        bad_baudrate,
    ]

    def everything(d: dict[str, Any]) -> None:
        for edit in edits:
            edit(d)

    result = check(write(tmp_path, everything))
    assert_clean_failure(result)
    paths = sorted(line.split(": ", 1)[0] for line in problem_lines(result))
    assert paths == sorted(
        [
            "colour",
            "outbox.max_byte",
            "devices[1].parity",
            "gateway.store_id",
            "mqtt.url",
            "mqtt.key_file",
            "devices[1].id",
            "devices[2].kind",
            "devices[0].baudrate",
        ]
    ), result.output


@pytest.mark.parametrize(
    "mqtt",
    [
        {"url": "mqtts://broker.example.com"},
        {"url": "mqtts://10.1.2.3:8883", "cert_file": "/c.pem", "key_file": "/c.key"},
        {"url": "mqtt://10.1.2.3:1883", "insecure": True},
        {"url": "mqtt://127.0.0.1:1883"},
        {"url": "mqtt://localhost"},
        {"url": "mqtt://[::1]:1883"},
    ],
)
def test_allowed_broker_urls(tmp_path: Path, mqtt: dict[str, Any]) -> None:
    def use(d: dict[str, Any]) -> None:
        d["mqtt"] = mqtt

    result = check(write(tmp_path, use))
    assert result.exit_code == 0, result.output
    cfg = load_config(write(tmp_path, use), environ={})
    assert cfg.mqtt.tls == mqtt["url"].startswith("mqtts://")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path)
    environ = {
        "STOREGW_MQTT__KEEPALIVE_S": "45",
        "STOREGW_GATEWAY__STORE_ID": "S777",
        "STOREGW_OUTBOX__DURABILITY": "crash",
        "PATH": "/usr/bin",
        "STOREGW_NOT_A_SECTION": "ignored",
    }
    cfg = load_config(path, environ=environ)
    assert cfg.mqtt.keepalive_s == 45
    assert cfg.gateway.store_id == "S777"
    assert cfg.outbox.durability == "crash"
    assert cfg.gateway.gateway_id == "gw-1", "keys not overridden keep the file's value"
    assert cfg.outbox.max_bytes == 1048576
    plain = load_config(path, environ={})
    assert plain.mqtt.keepalive_s == 30
    assert plain.gateway.store_id == "S001"


def test_environment_overrides_reach_the_cli_and_are_validated(tmp_path: Path) -> None:
    path = write(tmp_path)
    ok = check(path, env={"STOREGW_GATEWAY__STORE_ID": "S888"})
    assert ok.exit_code == 0, ok.output
    assert "S888" in ok.output
    bad = check(path, env={"STOREGW_MQTT__KEEPALIVE_S": "soon"})
    assert_clean_failure(bad)
    assert problem_lines(bad)[0].startswith("mqtt.keepalive_s: ")


def test_bad_toml_gets_a_clear_message_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "storegw.toml"
    path.write_text('[gateway]\nstore_id = "S001"\ngateway_id = gw-1\n')
    result = check(path)
    assert_clean_failure(result)
    assert str(path) in result.output
    assert "not valid TOML" in result.output
    assert "line 3" in result.output
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems[0].message.startswith("not valid TOML")


def test_a_file_that_is_not_utf8_gets_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "storegw.toml"
    path.write_bytes(b'[gateway]\nstore_id = "S\xff"\n')
    result = check(path)
    assert_clean_failure(result)
    assert "not valid TOML" in result.output


@pytest.mark.parametrize("nesting", [b"[" * 5000, b"{b = " * 5000], ids=["array", "table"])
def test_deeply_nested_toml_gets_a_clear_message(tmp_path: Path, nesting: bytes) -> None:
    path = tmp_path / "storegw.toml"
    path.write_bytes(b"a = " + nesting)  # tomllib recursed into a RecursionError (found by fuzzing)
    result = check(path)
    assert_clean_failure(result)
    assert "not valid TOML: nested too deeply" in result.output


def test_a_missing_file_gets_a_clear_message_and_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    result = check(path)
    assert_clean_failure(result)
    assert str(path) in result.output
    assert "cannot read: No such file or directory" in result.output


def test_run_with_a_broken_file_refuses_to_start_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "-c", str(write(tmp_path, bad_store_id))])
    assert_clean_failure(result)
    assert "gateway.store_id" in result.output


def test_redacted_config_hides_the_password_and_key_path(tmp_path: Path) -> None:
    def with_key(d: dict[str, Any]) -> None:
        d["mqtt"].update(cert_file="/etc/storegw/c.pem", key_file="/etc/storegw/c.key")

    shown = load_config(write(tmp_path, with_key), environ={}).redacted()
    assert "s3cret" not in str(shown)
    assert "c.key" not in str(shown)
    assert shown["mqtt"]["username"] == "gw"
