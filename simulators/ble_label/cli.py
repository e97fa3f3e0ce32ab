"""``storegw sim ble-label``: a demo exchange (render a product, push it, flash the LED) with
the frames printed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from drivers.label.ble_protocol import (
    AckStatus,
    ImageChunk,
    LedControl,
    ProtocolError,
    parse_command,
    parse_response,
)
from simulators.ble_label.label import BleLabelSimulator
from simulators.ble_label.link import InMemoryLink


def describe(frame: bytes, direction: str) -> str:
    """One frame, decoded, for people."""
    try:
        decoded = parse_command(frame) if direction == "->" else parse_response(frame)
    except ProtocolError as exc:
        return f"{direction} {frame.hex()}  (undecodable: {exc})"
    fields = {
        key: value.hex() if isinstance(value, bytes) else value
        for key, value in decoded.model_dump(exclude={"op", "data"}).items()
    }
    name = type(decoded).__name__
    extra = f" +{len(decoded.data)} bytes" if isinstance(decoded, ImageChunk) else ""
    return f"{direction} {name} {fields}{extra}"


async def _demo(
    *, panel: str, mtu: int, window: int, corrupt_chunk: int | None, png: Path | None, verbose: bool
) -> None:
    from drivers.label.ble import EslSession
    from drivers.label.ble_protocol import led_color, pack_bwr
    from drivers.label.content import ProductContent, UnitPrice
    from drivers.label.render import PANELS, palette_bytes, render_label

    spec = PANELS[panel]
    label = BleLabelSimulator(esl_id=7, width=spec.width, height=spec.height)

    def trace(direction: str, frame: bytes) -> None:
        is_chunk = frame[0] == 0x31
        if verbose or not is_chunk:
            typer.echo(describe(frame, direction))
        elif direction == "<-" and frame[-1] != AckStatus.OK:
            typer.echo(describe(frame, direction) + "  <- NAK, will be sent again")

    link = InMemoryLink(
        label,
        max_write=mtu - 3,
        corrupt_chunks=() if corrupt_chunk is None else (corrupt_chunk,),
        trace=trace,
    )
    product = ProductContent(
        name="Organic Whole Milk 1 l",
        price=Decimal("1.49"),
        member_price=Decimal("1.29"),
        unit_price=UnitPrice(amount=Decimal("1.49"), unit="l"),
        url="https://shop.example.com/p/4012345678901",
        promo_text="Fresh from the farm",
    )
    rendered = render_label(product, spec)
    payload = pack_bwr(palette_bytes(rendered.image), spec.width, spec.height)
    typer.echo(f"label esl_id=7 {spec.width}x{spec.height}, image {len(payload)} bytes, MTU {mtu}")
    await link.connect()
    session = EslSession(link, 7, ack_timeout_s=0.5, window=window)
    await session.ping()
    stats = await session.push_image(payload, spec.width, spec.height)
    await session.led(LedControl(esl_id=7, color=led_color("green"), repeat=5))
    await session.ping()
    await link.disconnect()
    typer.echo(
        f"pushed {stats.chunks} chunks of {stats.chunk_size} bytes; "
        f"{stats.naks} NAK(s), {stats.retransmissions} retransmission(s), "
        f"{stats.timeouts} timeout(s); label verified {label.transfers_verified} image(s)"
    )
    if png is not None:
        label.displayed_image().save(png, format="PNG")
        typer.echo(f"the label's display saved to {png}")


def command(
    *,
    panel: Annotated[str, typer.Option(help="Panel: 2.13, 2.9 or 4.2.")] = "2.9",
    mtu: Annotated[int, typer.Option(min=23, max=517, help="ATT MTU of the simulated link.")] = 247,
    window: Annotated[int, typer.Option(min=1, max=64, help="Chunks in flight.")] = 4,
    corrupt_chunk: Annotated[
        int | None, typer.Option(min=0, help="Corrupt this chunk once in the air (NAK demo).")
    ] = 3,
    png: Annotated[
        Path | None, typer.Option("--png", help="Save what the label shows as PNG.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Print every chunk.")] = False,
) -> None:
    """Run a demo exchange with a simulated BLE label in-process (there is no radio)."""
    from drivers.label.render import PANELS

    if panel not in PANELS:
        raise typer.BadParameter(f"panel must be one of {', '.join(PANELS)}")
    asyncio.run(
        _demo(
            panel=panel,
            mtu=mtu,
            window=window,
            corrupt_chunk=corrupt_chunk,
            png=png,
            verbose=verbose,
        )
    )
