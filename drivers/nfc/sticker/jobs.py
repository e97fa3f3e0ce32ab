"""The tag work, run on the nfc thread: wait for a tag, write and read back, protect or lock.

nfcpy's own debug logging of frames is muted on that thread while a password is on the air.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from drivers.nfc.codec import (
    NTAG_SPECS,
    NdefError,
    NtagModel,
    StickerKey,
    StickerSignatureError,
    StickerUrlError,
    build_sticker_url,
    decode_ndef_message,
    decode_uri,
    derive_tag_password,
    encode_ndef_message,
    find_ndef_tlv,
    ntag_model,
    uri_record,
    verify_sticker_url,
)
from drivers.nfc.sticker.errors import (
    NoTagError,
    ReaderUnavailable,
    StickerCapacityError,
    TagReadOnlyError,
    UnsupportedTagError,
    VerifyError,
    WriteError,
)
from drivers.nfc.sticker.results import StickerRead, StickerResult

# --- keeping secrets out of nfcpy's debug log -------------------------------------------------


class _MuteOnThisThread(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "active", False)


_MUTE = _MuteOnThisThread()


@contextlib.contextmanager
def _secret_on_air() -> Iterator[None]:
    """Drop nfcpy log records from this thread: tt2_nxp and the frame dumps log passwords."""
    for name in list(logging.Logger.manager.loggerDict):
        if name == "nfc" or name.startswith("nfc."):
            logger = logging.getLogger(name)
            if _MUTE not in logger.filters:
                logger.addFilter(_MUTE)
    _MUTE.local.active = True
    try:
        yield
    finally:
        _MUTE.local.active = False


# --- tag work (on the nfc thread) ---------------------------------------------------------------


def _wait_for_tag(clf: Any, cancel: threading.Event, timeout: float) -> Any:
    deadline = time.monotonic() + timeout

    def terminate() -> bool:
        return cancel.wait(0.02) or time.monotonic() > deadline

    rdwr = {
        "targets": ["106A"],
        "on-connect": lambda tag: False,
        "iterations": 1,
        "beep-on-connect": False,
    }
    tag = clf.connect(rdwr=rdwr, terminate=terminate)
    if tag is False:
        raise ReaderUnavailable("the NFC reader stopped working")
    if not tag:
        if cancel.is_set():
            raise NoTagError("cancelled while waiting for a tag")
        raise NoTagError(f"no tag presented within {timeout:g} s")
    return tag


def _model_of(tag: Any) -> NtagModel:
    model = ntag_model(getattr(tag, "_product", None))
    if model is None:
        raise UnsupportedTagError(
            f"stickers must be NTAG213/215/216; this is {getattr(tag, 'product', tag)}"
        )
    return model


def _read_area(tag: Any, model: NtagModel) -> bytes:
    """The NDEF data area straight from the chip (READ commands, no nfcpy cache)."""
    import nfc.tag

    size = NTAG_SPECS[model].cc_size * 8
    out = bytearray()
    try:
        for page in range(4, 4 + size // 4, 4):
            out += tag.read(page)
    except nfc.tag.TagCommandError as exc:
        raise VerifyError(f"reading back failed: {exc}") from None
    return bytes(out[:size])


def _flags(tag: Any, model: NtagModel) -> tuple[bool, bool]:
    """(password protected, locked) from CFG0/AUTH0 and the static lock bytes."""
    import nfc.tag

    spec = NTAG_SPECS[model]
    try:
        header = tag.read(0)
        cfg = tag.read(spec.cfg_page)
    except nfc.tag.TagCommandError:
        return False, False
    locked = header[10] & 0xF8 == 0xF8 and header[11] == 0xFF
    return cfg[3] < spec.pages, locked


def _signature(tag: Any) -> str | None:
    sig = bytes(tag.signature)
    return None if not any(sig) else sig.hex()


def _writable_ndef(tag: Any, password: bytes) -> Any:
    ndef = tag.ndef
    if ndef is None:
        tag.format()
        ndef = tag.ndef
        if ndef is None:
            raise UnsupportedTagError(
                "the tag has no NDEF capability container and cannot be formatted"
            )
    if not ndef.is_writeable:
        with _secret_on_air():
            authenticated = bool(tag.authenticate(password))
        ndef = tag.ndef if authenticated else None
        if ndef is None or not ndef.is_writeable:
            raise TagReadOnlyError(
                "the tag is locked or protected by a password this key does not derive"
            )
    return ndef


def write_job(
    base: str,
    key: StickerKey,
    *,
    store: str,
    placement: str,
    protect: bool,
    lock: bool,
    timeout: float,
) -> Any:
    def job(clf: Any, cancel: threading.Event) -> StickerResult:
        import nfc.clf
        import nfc.tag

        tag = _wait_for_tag(clf, cancel, timeout)
        model = _model_of(tag)
        uid = bytes(tag.identifier)
        url = build_sticker_url(base, store, placement, uid, key)
        message = encode_ndef_message([uri_record(url)])
        password = derive_tag_password(key, uid)
        try:
            ndef = _writable_ndef(tag, password)
            if len(message) > ndef.capacity:
                raise StickerCapacityError(len(message), ndef.capacity, model)
            ndef.octets = message
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            raise WriteError(f"writing the URL failed: {exc}") from None

        found = find_ndef_tlv(_read_area(tag, model))
        if found != message:
            raise VerifyError(
                f"read back {len(found or b'')} bytes that differ from the {len(message)} written"
            )
        signature = _signature(tag)

        try:
            if protect:
                with _secret_on_air():
                    ok = tag.protect(password=password, read_protect=False, protect_from=3)
                if not ok:
                    raise WriteError("setting the NTAG password failed")
            if lock and not tag.protect():
                raise WriteError("setting the lock bits failed")
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            raise WriteError(f"protecting the tag failed: {exc}") from None
        protected, locked = _flags(tag, model) if (protect or lock) else (False, False)
        if protect and not protected:
            raise VerifyError("the password configuration did not take effect")
        if lock and not locked:
            raise VerifyError("the lock bits did not take effect")
        return StickerResult(
            uid=uid.hex(),
            model=model,
            url=url,
            store=store,
            placement=placement,
            signature_hex=signature,
            ndef_bytes=len(message),
            capacity_bytes=ndef.capacity,
            protected=protected,
            locked=locked,
            key_id=key.key_id,
        )

    return job


def read_job(key: StickerKey, timeout: float) -> Any:
    def job(clf: Any, cancel: threading.Event) -> StickerRead:
        import nfc.clf
        import nfc.tag

        tag = _wait_for_tag(clf, cancel, timeout)
        uid = bytes(tag.identifier)
        model = ntag_model(getattr(tag, "_product", None))
        try:
            ndef = tag.ndef
            octets = bytes(ndef.octets) if ndef is not None else b""
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            raise WriteError(f"reading the tag failed: {exc}") from None
        protected, locked = _flags(tag, model) if model else (False, False)
        signature = _signature(tag) if model else None
        common: dict[str, Any] = {
            "uid": uid.hex(),
            "model": model,
            "signature_hex": signature,
            "protected": protected,
            "locked": locked,
        }
        url = None
        try:
            for record in decode_ndef_message(octets):
                if record.tnf == 1 and record.type == b"U":
                    url = decode_uri(record.payload)
                    break
        except NdefError as exc:
            return StickerRead(url=None, valid=False, problem=f"malformed NDEF: {exc}", **common)
        if url is None:
            return StickerRead(url=None, valid=False, problem="no URL on the tag", **common)
        try:
            claim = verify_sticker_url(url, uid, key)
        except (StickerUrlError, StickerSignatureError) as exc:
            return StickerRead(url=url, valid=False, problem=str(exc), **common)
        return StickerRead(
            url=url, valid=True, store=claim.store, placement=claim.placement, **common
        )

    return job
