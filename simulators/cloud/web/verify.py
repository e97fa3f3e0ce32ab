"""Is this tap genuine and new? The cloud's side of a sticker URL, without any HTTP.

1. The URL parses as a sticker URL (the first ``?s=`` form is refused: its key never left the
   box that made it, and it carries no counter).
2. Its key id names a key of that store that is not retired.
3. NTAG21x: the signature covers store, placement, staff, key id and the mirrored UID.
   NTAG 424 DNA: the SUN message opens with the store's SDM meta read key, its SDMMAC checks
   with the tag's file read key, and the signature covers the UID inside it.
4. The tag's counter is greater than the last one seen for that UID (else: a replay).

Every outcome is recorded as a tap, refused ones included.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from drivers.nfc.codec import (
    StickerClaim,
    StickerKey,
    StickerSignatureError,
    StickerUrlError,
    check_signature,
    derive_sdm_keys,
    parse_sticker_url,
    verify_sticker_url,
)
from drivers.nfc.codec.sun import verify_sun
from simulators.cloud.store.stickers import StickerTables

Outcome = Literal["ok", "malformed", "legacy", "unknown_key", "bad_signature", "replay"]


class TapVerdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    tap_id: str
    store_id: str
    placement: str
    staff: str | None = None
    uid: str | None = None
    counter: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def _open_sun(claim: StickerClaim, key: StickerKey) -> StickerClaim:
    """The claim with the UID and counter a genuine SUN message carries."""
    assert claim.sun is not None
    meta, _ = derive_sdm_keys(key)
    picc = verify_sun(
        meta, lambda uid: derive_sdm_keys(key, uid)[1], claim.sun.picc_data, claim.sun.mac
    )
    check_signature(claim, picc.uid, key)
    return claim.model_copy(update={"uid": picc.uid.hex(), "counter": picc.counter})


async def _check(
    store: StickerTables, url: str, store_id: str
) -> tuple[StickerClaim | None, Outcome, str]:
    """(the claim, verified as far as it went; the outcome; why not ok)."""
    try:
        claim = parse_sticker_url(url)
    except StickerUrlError as exc:
        return None, "malformed", str(exc)
    if claim.legacy or claim.key_id is None:
        return claim, "legacy", "an old sticker the cloud cannot check"
    key = await store.sticker_key(store_id, claim.key_id)
    if key is None:
        return claim, "unknown_key", "no such sticker key for this store"
    try:
        opened = (
            _open_sun(claim, key) if claim.sun is not None else verify_sticker_url(url, None, key)
        )
    except (StickerSignatureError, StickerUrlError) as exc:
        bad = isinstance(exc, StickerSignatureError)
        why = "the sticker's signature does not match" if bad else str(exc)
        return claim, "bad_signature" if bad else "malformed", why
    assert opened.uid is not None
    assert opened.counter is not None
    if not await store.advance_sticker_counter(opened.uid, opened.counter):
        return opened, "replay", "this tap was seen before (the counter did not grow)"
    return opened, "ok", ""


async def verify_tap(
    store: StickerTables, url: str, *, store_id: str, placement: str, now: datetime
) -> TapVerdict:
    """Check a tap's URL (as the phone opened it; its path names ``store_id`` and
    ``placement``) and record the tap."""
    claim, outcome, reason = await _check(store, url, store_id)
    verified = claim is not None and outcome in ("ok", "replay")
    uid = claim.uid if verified and claim is not None else None
    counter = claim.counter if verified and claim is not None else None
    staff = claim.staff if claim is not None else None
    tap_id = await store.record_tap(
        store_id=store_id,
        placement=placement,
        staff=staff,
        key_id=claim.key_id if claim is not None else None,
        uid=uid,
        counter=counter,
        kind="ntag424" if claim is not None and claim.sun is not None else "ntag21x",
        outcome=outcome,
        now=now,
    )
    return TapVerdict(
        outcome=outcome,
        tap_id=tap_id,
        store_id=store_id,
        placement=placement,
        staff=staff if outcome == "ok" else None,
        uid=uid,
        counter=counter,
        reason=reason,
    )
