"""The technician's enrolment commands as typed, against a cloud stack: init a box, enrol it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner, Result

from simulators.cloud.enrollment import CloudStack
from storegw.cli import app


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in a worker thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def init_box(
    stack: CloudStack, box: Path, store: str = "S001", gateway: str = "gw-1"
) -> Path:
    config = box / "storegw.toml"
    result = await cli(
        "provision", "init", "-c", str(config), "--store", store, "--gateway", gateway,
        "--url", stack.broker.url, "--data-dir", str(box / "data"),
        "--ca-file", str(stack.pki.ca_file),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return config


async def enroll(stack: CloudStack, config: Path, token: str, *extra: str) -> Result:
    return await cli(
        "provision", "enroll", "-c", str(config), "--claim", token,
        "--provision-url", stack.broker.provision_url, "--timeout", "10", *extra,
    )  # fmt: skip
