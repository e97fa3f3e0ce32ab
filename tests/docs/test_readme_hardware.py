"""README "What hardware works": a table per device kind, and the reader lists agree with
what the install ships (the udev rule is nfcpy's USB table)."""

from __future__ import annotations

import re

from drivers import registry
from tests.support.paths import REPO

README = (REPO / "README.md").read_text()
RULES = (REPO / "deploy/udev/60-storegw-nfc.rules").read_text()


def _section() -> str:
    start = README.index("### What hardware works")
    return README[start : README.index("\n## ", start)]


def _kinds() -> set[str]:
    kinds = set(registry.names())
    assert {"scanner", "smartcard", "nfc", "label"} <= kinds
    return kinds


def test_every_device_kind_has_a_table_with_verified_simulated_and_limits() -> None:
    section = _section()
    for kind in _kinds():
        match = re.search(rf"\*\*[^*\n]*\(`{kind}`[^*\n]*\)\*\*\n\n(\|.*\n)+", section)
        assert match is not None, f"no table for {kind}"
        rows = [line.split("|")[1].strip() for line in match.group(0).splitlines()[2:]]
        assert {"verified", "simulator only", "limits"} <= set(rows), (kind, rows)


def test_the_devices_table_has_a_row_for_every_registered_kind() -> None:
    start = README.index("## Devices\n")
    table = README[start : README.index("\n\n", README.index("| kind |", start))]
    rows = set(re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE))
    assert rows == set(registry.names())


def test_nfc_readers_match_the_udev_rule_and_acr1252u_is_pc_sc() -> None:
    section = _section()
    ids = set(re.findall(r'idVendor}=="([0-9a-f]{4})", ATTRS{idProduct}=="([0-9a-f]{4})"', RULES))
    assert len(ids) == 9  # nfcpy 1.0.4 usb_device_map
    for vid, pid in {("054c", "06c1"), ("054c", "06c3"), ("072f", "2200")}:
        assert (vid, pid) in ids
        assert f"{vid}:{pid}" in section or f"`{pid}`" in section
    unsupported = next(line for line in section.splitlines() if line.startswith("| not supported"))
    assert "ACR1252U" in unsupported
    assert 'kind = "smartcard"' in unsupported
    assert "storegw's own" in section  # the BLE label protocol is no vendor's
