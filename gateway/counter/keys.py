"""The cloud's public keys, kept so the till can verify coupons and member QR codes offline.

The cloud publishes its JWKS retained on ``{prefix}/cloud/keys``; the gateway receives it at
every connect, keeps the latest in ``data_dir/cloud-keys.json`` (so it verifies after a
restart with the cloud unreachable) and trusts keys pinned in ``[counter] cloud_keys_file``
in addition. A received set replaces the previous one: a key the cloud withdrew is no longer
trusted (a pinned key stays trusted until the file changes).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from core import safejson
from core.datafiles import FILE_MODE, write_atomic
from gateway.wire.tokens import KeySet, TokenError

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 64 * 1024
"""A JWKS of a few Ed25519 keys is well under 1 KB."""


def _parse_jwks(raw: bytes) -> KeySet:
    """Raises ValueError (safejson.BadJson) or TokenError."""
    doc: Any = safejson.loads(raw, max_bytes=MAX_JWKS_BYTES)
    return KeySet.from_jwks(doc)


class CloudKeys:
    def __init__(self, cache_path: Path, pinned_path: Path | None = None) -> None:
        self.cache_path = cache_path
        self.pinned_path = pinned_path
        self._pinned = KeySet()
        self._received = KeySet()
        self.keyset = KeySet()
        self.updated = 0

    def load(self) -> None:
        """Read the pinned file (a broken one is a configuration error) and the cache."""
        if self.pinned_path is not None:
            try:
                self._pinned = _parse_jwks(self.pinned_path.read_bytes())
            except (OSError, ValueError, TokenError) as exc:
                raise ValueError(
                    f"counter.cloud_keys_file {self.pinned_path}: not a usable JWKS: {exc}"
                ) from None
        if self.cache_path.exists():
            try:
                self._received = _parse_jwks(self.cache_path.read_bytes())
            except (OSError, ValueError, TokenError) as exc:
                log.warning(
                    "ignoring unreadable cloud key cache",
                    extra={"path": str(self.cache_path), "error": str(exc)},
                )
        self._combine()
        log.info("cloud keys loaded", extra={"kids": self.keyset.kids})

    def _combine(self) -> None:
        self.keyset = self._received.merged(self._pinned)

    def on_message(self, payload: bytes) -> None:
        """A JWKS from the cloud (retained). Garbage is logged and ignored, keeping the old set."""
        if not payload:
            return  # a cleared retained message: keep what we have rather than trust nothing
        try:
            received = _parse_jwks(payload)
        except (ValueError, TokenError) as exc:
            log.warning("ignoring malformed cloud keys", extra={"error": str(exc)[:200]})
            return
        self.updated += 1
        if received == self._received:
            return
        self._received = received
        self._combine()
        self._save(received)
        log.info("cloud keys updated", extra={"kids": received.kids})

    def _save(self, keys: KeySet) -> None:
        """Atomically (temporary file, fsync, rename), 0600 like every data file."""
        try:
            write_atomic(self.cache_path, json.dumps(keys.to_jwks()).encode(), FILE_MODE)
        except OSError as exc:
            log.warning(
                "cannot save cloud keys", extra={"path": str(self.cache_path), "error": str(exc)}
            )
