"""``storegw sim cloud ...`` as a process of its own, as a technician runs it."""

from __future__ import annotations

import asyncio
import sys


async def storegw(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    """``storegw sim cloud ARGS``: exit code, stdout, stderr (a wide terminal for tables)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "storegw",
        "sim",
        "cloud",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
