"""``storegw sim nfc``: one emulated tag presented over nfcpy's udp device."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from drivers.nfc.codec import (
    NtagModel,
    encode_ndef_message,
    ntag_model,
    text_record,
    uri_record,
)
from simulators.nfc.felica import EmulatedFelica
from simulators.nfc.ntag import EmulatedNtag
from simulators.nfc.simulator import EmulatedTag, NfcTagSimulator
from simulators.nfc.type4 import EmulatedType4Tag


def make_tag(
    tag_type: int,
    uid: str | None,
    *,
    uri: str | None = None,
    text: str | None = None,
    model: NtagModel = "NTAG213",
) -> EmulatedTag:
    """The tag ``storegw sim nfc`` presents."""
    records = []
    if uri:
        records.append(uri_record(uri))
    if text:
        records.append(text_record(text))
    message = encode_ndef_message(records) if records else None
    if tag_type == 2:
        return EmulatedNtag(uid, model, ndef=message)
    if tag_type == 3:
        return EmulatedFelica(uid, ndef=message)
    if tag_type == 4:
        return EmulatedType4Tag(uid, ndef=message)
    raise ValueError("tag type must be 2, 3 or 4")


def command(  # typer maps each keyword to a CLI option
    *,
    port: Annotated[
        int, typer.Option(help="UDP port; readers use device udp:127.0.0.1:PORT.")
    ] = 54321,
    type_: Annotated[int, typer.Option("--type", help="NFC Forum tag type: 2, 3 or 4.")] = 2,
    uid: Annotated[
        str | None,
        typer.Option(help="UID as hex (7 bytes; IDm, 8 bytes, for type 3). Random if unset."),
    ] = None,
    uri: Annotated[str | None, typer.Option(help="A URI record to store.")] = None,
    text: Annotated[str | None, typer.Option(help="A text record to store.")] = None,
    model: Annotated[str, typer.Option(help="NTAG213, NTAG215 or NTAG216 (type 2).")] = "NTAG213",
    repeat: Annotated[
        bool, typer.Option(help="Tap again and again: in the field --dwell s, out --gap s.")
    ] = False,
    dwell: Annotated[float, typer.Option(help="Seconds in the field after each read.")] = 1.0,
    gap: Annotated[float, typer.Option(help="Seconds out of the field between taps.")] = 1.0,
) -> None:
    """Present an NFC tag to readers on nfcpy's udp device until Ctrl-C.

    Example: storegw sim nfc --port 54321 --type 2 --uri https://example.com/t/S1/P1
    """
    if ntag_model(model) is None:
        raise typer.BadParameter("model must be NTAG213, NTAG215 or NTAG216")
    try:
        tag = make_tag(type_, uid, uri=uri, text=text, model=ntag_model(model) or "NTAG213")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None

    reported = [0]

    def report(t: EmulatedTag) -> None:  # once per tap (NXP detection re-selects the tag)
        if reported[0] != sim.presentations:
            reported[0] = sim.presentations
            typer.echo(f"read: type {type_} uid {t.uid.hex()}")

    sim = NfcTagSimulator(
        port, tag, repeat=repeat, dwell_s=dwell if repeat else None, gap_s=gap, on_activated=report
    )
    try:
        sim.start()
    except (OSError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"presenting type {type_} tag {tag.uid.hex()} on {sim.path} (Ctrl-C stops)")
    try:
        while sim.error is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    if sim.error is not None:
        typer.echo(f"error: {sim.error}", err=True)
        raise typer.Exit(1)
