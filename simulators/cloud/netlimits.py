"""deploy/mosquitto/enrolment-limits.nft on this host: the enrolment listener's connection caps.

Mosquitto 2.0.11 miscounts ``max_connections`` (the .nft file's header says how, with the
upstream fix); the kernel's connection tracking does not. Like :func:`render_deploy_config`,
only the port and the table name are substituted, and each substitution must find its text.
Loading needs root and ``nft`` (Debian package nftables, scripts/system-deps.sh).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from core.errors import StoregwError
from simulators.cloud.shipped import DEPLOY_DIR, substitute

LIMITS_FILE = DEPLOY_DIR / "enrolment-limits.nft"
TABLE = "storegw_enrol"
NFT = "nft"


class NetLimitsError(StoregwError):
    """The rules could not be loaded or removed (not root, no nft, no kernel support)."""

    def __init__(self, message: str) -> None:
        super().__init__("netlimits_failed", message)


def render_enrolment_limits(port: int, table: str = TABLE, source: Path = LIMITS_FILE) -> str:
    """The shipped rules for the enrolment listener on ``port``, in table ``table`` (a test or
    a one-machine bring-up runs its own table beside any other)."""
    return substitute(
        source,
        {
            f"table inet {TABLE}\n": f"table inet {table}\n",  # the create and delete lines
            f"table inet {TABLE} {{": f"table inet {table} {{",
            "tcp dport 8884 ": f"tcp dport {port} ",
        },
    )


def load(text: str) -> None:
    _nft(["-f", "-"], text)


def unload(table: str) -> None:
    _nft(["delete", "table", "inet", table], None)


def _nft(args: list[str], stdin: str | None) -> None:
    try:
        done = subprocess.run(
            [NFT, *args], input=stdin, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NetLimitsError(f"cannot run {NFT}: {exc}") from None
    if done.returncode != 0:
        raise NetLimitsError(f"{NFT} {' '.join(args)}: {done.stderr.strip()}")
