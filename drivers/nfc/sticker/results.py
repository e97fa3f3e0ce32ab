"""What writing or reading a sticker reports."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from drivers.nfc.codec import NtagModel


class StickerResult(BaseModel):
    """A sticker written and read back; what provisioning records."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uid: str
    model: NtagModel
    url: str
    store: str
    placement: str
    staff: str | None = None
    counter: int | None = None
    """The NFC counter the tag mirrored when the write was checked."""
    signature_hex: str | None
    """NXP originality signature (READ_SIG), 32 bytes; None if the tag returned none."""
    ndef_bytes: int
    capacity_bytes: int
    protected: bool
    locked: bool
    key_id: str
    """Which sticker key signed the URL (a hash prefix, not the key)."""


class StickerRead(BaseModel):
    """What a sticker holds and whether its URL verifies for its UID."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uid: str
    model: NtagModel | None
    url: str | None
    valid: bool
    store: str | None = None
    placement: str | None = None
    staff: str | None = None
    key_id: str | None = None
    counter: int | None = None
    """The NFC counter this read made the tag mirror (it counts every activation's first read)."""
    problem: str | None = None
    """Why ``valid`` is False (no URL, not a sticker URL, signature mismatch)."""
    signature_hex: str | None = None
    protected: bool = False
    locked: bool = False
