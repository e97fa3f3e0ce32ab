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
    Mirror,
    NdefError,
    NtagModel,
    StickerClaim,
    StickerKey,
    StickerSignatureError,
    StickerUrlError,
    build_sticker_url,
    decode_mirror,
    decode_ndef_message,
    decode_uri,
    derive_tag_password,
    encode_ndef_message,
    find_ndef_tlv,
    ntag_model,
    placeholder_mirror,
    uri_record,
    verify_sticker_url,
)
from drivers.nfc.codec.mirror import NFC_CNT_EN
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


def _writable_ndef(tag: Any, password: bytes) -> tuple[Any, bool]:
    """The tag's NDEF, writable, and whether it took the password to make it so."""
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
        return ndef, True
    return ndef, False


def _reactivate(tag: Any, password: bytes | None) -> None:
    """Select the tag again (what nfcpy's protect does): CFG0 changes apply from now on, and
    the next READ is an activation's first, which the NFC counter counts."""
    tag._target = tag.clf.sense(tag.target)
    if not tag.target:
        raise WriteError("the tag left the reader while it was being configured")
    if password is not None:
        with _secret_on_air():
            if not tag.authenticate(password):
                raise WriteError("the tag no longer takes its password")


def _set_mirror(tag: Any, model: NtagModel, mirror: Mirror | None) -> None:
    """Write CFG0 (MIRROR, MIRROR_PAGE; RFUI and AUTH0 kept) and NFC_CNT_EN in ACCESS."""
    spec = NTAG_SPECS[model]
    cfg = bytes(tag.read(spec.cfg_page))
    if mirror is None:
        cfg0 = bytes([cfg[0] & 0x0F, cfg[1], 0x00, cfg[3]])
        cfg1 = cfg[4:8]
    else:
        cfg0 = bytes([mirror.mirror_byte(), cfg[1], mirror.page, cfg[3]])
        cfg1 = bytes([cfg[4] | NFC_CNT_EN]) + cfg[5:8]
    if cfg0 != cfg[0:4]:
        tag.write(spec.cfg_page, cfg0)
    if cfg1 != cfg[4:8]:
        tag.write(spec.cfg_page + 1, cfg1)


def _mirror_now(tag: Any, model: NtagModel) -> Mirror:
    return decode_mirror(bytes(tag.read(NTAG_SPECS[model].cfg_page))[0:4])


def _mirror_and_check(
    tag: Any, model: NtagModel, mirror: Mirror, key: StickerKey, password: bytes | None
) -> StickerClaim:
    """Turn the mirror on, select the tag again and check that it shows its UID and counter."""
    import nfc.clf
    import nfc.tag

    try:
        _set_mirror(tag, model, mirror)
        _reactivate(tag, password)
    except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
        raise WriteError(f"setting the UID and counter mirror failed: {exc}") from None
    mirrored = _url_of(find_ndef_tlv(_read_area(tag, model)))
    try:
        return verify_sticker_url(mirrored or "", bytes(tag.identifier), key)
    except (StickerUrlError, StickerSignatureError) as exc:
        raise VerifyError(f"the tag does not mirror its UID and counter: {exc}") from None


def write_job(
    base: str,
    key: StickerKey,
    *,
    store: str,
    placement: str,
    staff: str | None,
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
        url = build_sticker_url(base, store, placement, uid, key, staff=staff)
        message = encode_ndef_message([uri_record(url)])
        password = derive_tag_password(key, uid)
        try:
            ndef, needed_password = _writable_ndef(tag, password)
            if len(message) > ndef.capacity:
                raise StickerCapacityError(len(message), ndef.capacity, model)
            authed = password if needed_password else None
            if _mirror_now(tag, model).active:  # an old mirror would overlay the new URL
                _set_mirror(tag, model, None)
                _reactivate(tag, authed)
                ndef = tag.ndef
            ndef.octets = message
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            raise WriteError(f"writing the URL failed: {exc}") from None

        area = _read_area(tag, model)
        found = find_ndef_tlv(area)
        if found != message:
            raise VerifyError(
                f"read back {len(found or b'')} bytes that differ from the {len(message)} written"
            )
        claim = _mirror_and_check(tag, model, placeholder_mirror(area, message), key, authed)
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
            staff=staff,
            counter=claim.counter,
            signature_hex=signature,
            ndef_bytes=len(message),
            capacity_bytes=ndef.capacity,
            protected=protected,
            locked=locked,
            key_id=key.key_id,
        )

    return job


def _url_of(octets: bytes | None) -> str | None:
    for record in decode_ndef_message(octets or b""):
        if record.tnf == 1 and record.type == b"U":
            return decode_uri(record.payload)
    return None


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
        try:
            url = _url_of(octets)
        except NdefError as exc:
            return StickerRead(url=None, valid=False, problem=f"malformed NDEF: {exc}", **common)
        if url is None:
            return StickerRead(url=None, valid=False, problem="no URL on the tag", **common)
        try:
            claim = verify_sticker_url(url, uid, key)
        except (StickerUrlError, StickerSignatureError) as exc:
            return StickerRead(url=url, valid=False, problem=str(exc), **common)
        return StickerRead(
            url=url,
            valid=True,
            store=claim.store,
            placement=claim.placement,
            staff=claim.staff,
            counter=claim.counter,
            key_id=claim.key_id,
            **common,
        )

    return job
