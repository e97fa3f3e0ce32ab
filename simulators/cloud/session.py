"""Staying connected to the broker: the loop the member service and the enrolment service share.

A lost broker is logged and retried after a jittered backoff (reset once connected), so many
simulated clouds restarting with a broker do not reconnect in step.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiomqtt

from core.backoff import Backoff

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 2.0


async def keep_connected(
    connect: Callable[[], aiomqtt.Client],
    session: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    who: str,
    on_lost: Callable[[], None],
) -> None:
    """Run ``session`` on every connection ``connect`` makes, until cancelled."""
    backoff = Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
    while True:
        try:
            async with connect() as client:
                backoff.reset()
                await session(client)
        except aiomqtt.MqttError as exc:
            log.warning("%s lost the broker: %s", who, exc)
        finally:
            on_lost()
        await asyncio.sleep(backoff.next())
