"""The cloud side, simulated: a member service over MQTT v5 and a listen-only event listener.

``from simulators.cloud import CloudListener, CloudService, command`` — see
:mod:`simulators.cloud.service` for the service and :mod:`simulators.cloud.seed` for the
seed data tests and the demo can name.
"""

from __future__ import annotations

from simulators.cloud import seed
from simulators.cloud.cli import command
from simulators.cloud.cli_admin import app
from simulators.cloud.listener import CloudListener, CloudStats, GatewayLedger
from simulators.cloud.service import CloudService
from simulators.cloud.store import CloudStore, Refusal

__all__ = [
    "CloudListener",
    "CloudService",
    "CloudStats",
    "CloudStore",
    "GatewayLedger",
    "Refusal",
    "app",
    "command",
    "seed",
]
