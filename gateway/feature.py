"""What the daemon runs besides its devices: features with one lifecycle.

A feature (the counter, prices, labels, kiosks, the certificate watch) declares what it plugs
into, and the daemon wires every feature the same way:

- ``async with feature.lifespan()`` opens what it owns (its database) before anything may
  call it;
- :meth:`Feature.commands` and :meth:`Feature.subscriptions` are registered, and
  :meth:`Feature.on_reading` hears every durable device reading, through :func:`attach`,
  which returns how to undo all of it;
- :meth:`Feature.run` is started inside the daemon's TaskGroup (task ``feature.name``);
- the bridge calls :meth:`Feature.on_connected` once a session to the cloud is up and
  :meth:`Feature.on_disconnected` once it is gone.

:class:`BaseFeature` gives the no-op answer for whatever a feature does not use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any, Generic, Protocol, TypeVar

from core.events import Reading
from gateway.commands import Command, Dispatcher, Undo

InboundHandler = Callable[[bytes], None]
"""Called with the payload of a message on an exact topic; must not block."""
ReadingListener = Callable[[str, Reading], None]
"""Called with each device reading once it is durable; must not block."""


class Feature(Protocol):
    name: str

    def lifespan(self) -> AbstractAsyncContextManager[object]: ...

    def commands(self) -> Sequence[Command[Any, Any]]: ...

    def subscriptions(self) -> Mapping[str, InboundHandler]:
        """Exact topics outside the command space, subscribed in every session."""
        ...

    def on_reading(self, device_id: str, reading: Reading) -> None: ...

    async def run(self) -> None:
        """Its background work until cancelled; returns at once if it has none."""
        ...

    def on_connected(self) -> None: ...

    def on_disconnected(self) -> None: ...


class Links(Protocol):
    """Where the bridge tells features about the cloud and hands them their topics."""

    def subscribe(self, topics: Mapping[str, InboundHandler]) -> Undo: ...

    def watch(self, connected: Callable[[], None], disconnected: Callable[[], None]) -> Undo: ...


class BaseFeature:
    """Nothing to open, register, hear or run: override what the feature uses."""

    name = "feature"

    def lifespan(self) -> AbstractAsyncContextManager[object]:
        return nullcontext()

    def commands(self) -> Sequence[Command[Any, Any]]:
        return ()

    def subscriptions(self) -> Mapping[str, InboundHandler]:
        return {}

    def on_reading(self, device_id: str, reading: Reading) -> None:
        return None

    async def run(self) -> None:
        return None

    def on_connected(self) -> None:
        return None

    def on_disconnected(self) -> None:
        return None


S = TypeVar("S", bound=AbstractAsyncContextManager[Any])


class ServiceFeature(BaseFeature, Generic[S]):
    """A feature over a service that is an async context manager: opened with the feature."""

    def __init__(self, service: S) -> None:
        self.service = service

    def lifespan(self) -> AbstractAsyncContextManager[object]:
        return self.service


def attach(
    feature: Feature,
    dispatcher: Dispatcher,
    links: Links,
    listeners: list[ReadingListener],
) -> Undo:
    """Register what ``feature`` declares; the returned callable takes all of it back. A
    refused registration (a command name or topic already taken) leaves nothing behind."""
    undo: list[Undo] = []

    def detach() -> None:
        if feature.on_reading in listeners:
            listeners.remove(feature.on_reading)
        for step in reversed(undo):
            step()

    try:
        undo.append(dispatcher.register(*feature.commands()))
        undo.append(links.subscribe(feature.subscriptions()))
        undo.append(links.watch(feature.on_connected, feature.on_disconnected))
    except BaseException:
        detach()
        raise
    listeners.append(feature.on_reading)
    return detach
