"""The one list of fuzz targets, shared by tests/fuzz/test_fuzz.py, the atheris run and
bench/fuzz.py. A new parser of outside bytes gets a Target here (and seeds), nowhere else."""

from __future__ import annotations

from tests.fuzz import core, targets_commands, targets_gateway
from tests.fuzz.core import Target
from tests.fuzz.targets_commands import COMMAND_TARGETS
from tests.fuzz.targets_devices import DEVICE_TARGETS
from tests.fuzz.targets_gateway import GATEWAY_TARGETS
from tests.fuzz.targets_labels import LABEL_TARGETS

TARGETS: tuple[Target, ...] = DEVICE_TARGETS + LABEL_TARGETS + COMMAND_TARGETS + GATEWAY_TARGETS
BY_NAME: dict[str, Target] = {t.name: t for t in TARGETS}
assert len(BY_NAME) == len(TARGETS), "fuzz target names must be unique"


def close() -> None:
    """Close what targets opened (the gateway's stores, the event loop, the scratch dir)."""
    targets_commands.close_gateway()
    targets_gateway.close()
    core.close_shared()
