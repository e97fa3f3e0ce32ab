"""The store's uplink as a TCP proxy in front of the test broker (a pulled cable, not a dead
broker): shared by the counter, API, kiosk and bridge tests."""

from __future__ import annotations

import asyncio
import contextlib

from simulators.broker import MosquittoBroker, free_port


class Link:
    """The store's uplink as a TCP proxy to the broker: ``cut()`` is a pulled cable (open
    connections drop, new ones are refused), ``restore()`` plugs it back. The cloud stays
    connected to the broker throughout, as it would."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.target = broker.port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def restore(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
