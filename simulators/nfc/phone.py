"""A phone tapping a sticker: nfcpy as the phone's NFC reader, reading the tag's NDEF URL the
way a phone's tag dispatch does (a fresh activation each tap, so an NTAG21x counts it)."""

from __future__ import annotations

import threading
import time
from typing import Any

from drivers.nfc.codec import decode_ndef_message, decode_uri
from drivers.nfc.transport import ClfThread


def _read_url_job(timeout: float) -> Any:
    def job(clf: Any, cancel: threading.Event) -> str | None:
        deadline = time.monotonic() + timeout
        rdwr = {"targets": ["106A"], "on-connect": lambda tag: False, "beep-on-connect": False}
        tag = clf.connect(
            rdwr=rdwr, terminate=lambda: cancel.wait(0.02) or time.monotonic() > deadline
        )
        if not tag:
            raise TimeoutError(f"the phone found no tag within {timeout:g} s")
        ndef = tag.ndef
        for record in decode_ndef_message(bytes(ndef.octets) if ndef is not None else b""):
            if record.tnf == 1 and record.type == b"U":
                return decode_uri(record.payload)
        return None

    return job


async def tap_with_phone(device: str, *, timeout: float = 5.0) -> str | None:
    """The URL a phone opens when held to the tag on ``device`` (``udp:127.0.0.1:PORT``)."""
    clf = ClfThread(device, name="phone")
    await clf.open()
    try:
        url: str | None = await clf.run(_read_url_job(timeout))
        return url
    finally:
        await clf.close()
