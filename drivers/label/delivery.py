"""Delivery proof for access-point backends: an upload is not a label showing it.

After ``/imgupload`` the OEPL AP converts the image and queues it for the tag, which takes it at
its next check-in. The AP's tag record tells when that happened (``OpenEPaperLink`` commit
``cdd1cfa950b97218e20ae23b65f8811af6f1741b``, ``ESP32_AP-Flasher/src/newproto.cpp``
``processXferComplete``): ``pending`` drops back (``countQueueItem``), ``hash`` becomes the md5 of
what the tag took, and ``updatecount`` is incremented. If the new image equals what the tag
already shows, the AP queues nothing (``prepareDataAvail``: "new image is the same as current
image. not updating tag.") - then the tag shows it already.

:class:`Deliveries` keeps one watch per label and turns fresh records into outcomes:
``delivered`` (with the time it took), ``queued_at_ap`` once the timeout passes with the tag not
having taken it (usually asleep; watching goes on and a later ``delivered`` follows), or
``superseded`` when a newer upload replaces a watched one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivers.label.backend import LabelHealth

FORGET_S = 7 * 86400.0
"""A watch still open after this long is dropped (the tag is gone or broken: health says so)."""


@dataclass
class Watch:
    label_id: str
    push_id: str
    enqueued_at: float
    uploaded_at: float
    attempt: int
    baseline: LabelHealth
    digest: str = ""
    """sha256 of the pushed PNG, to know later what the tag shows."""
    same_as_shown: bool = False
    """The image is the one the tag already took: the AP will queue nothing."""
    reported_queued: bool = False


@dataclass(frozen=True)
class Outcome:
    watch: Watch
    status: Literal["delivered", "queued_at_ap", "superseded", "forgotten"]
    health: LabelHealth | None = None
    at: float = 0.0


def taken(baseline: LabelHealth, now: LabelHealth, *, same_as_shown: bool) -> bool:
    """Whether the record shows the tag has taken the upload made after ``baseline``."""
    if not now.known or (now.pending or 0) > 0:
        return False
    if now.update_count is not None and baseline.update_count is not None:
        if now.update_count > baseline.update_count:
            return True
    elif now.content_hash is not None and now.content_hash != baseline.content_hash:
        return True
    return same_as_shown


class Deliveries:
    """Open watches by label; pure bookkeeping (the driver reads the records)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.watches: dict[str, Watch] = {}

    def __len__(self) -> int:
        return len(self.watches)

    def add(self, watch: Watch) -> Watch | None:
        """Watch a new upload; the watch it replaces (superseded), if any."""
        old = self.watches.get(watch.label_id)
        self.watches[watch.label_id] = watch
        return old

    def check(self, records: dict[str, LabelHealth], now: float) -> list[Outcome]:
        out: list[Outcome] = []
        for label_id, watch in list(self.watches.items()):
            record = records.get(label_id)
            if record is not None and taken(
                watch.baseline, record, same_as_shown=watch.same_as_shown
            ):
                del self.watches[label_id]
                out.append(Outcome(watch, "delivered", record, now))
            elif now - watch.uploaded_at >= FORGET_S:
                del self.watches[label_id]
                out.append(Outcome(watch, "forgotten", record, now))
            elif not watch.reported_queued and now - watch.uploaded_at >= self.timeout_s:
                watch.reported_queued = True
                out.append(Outcome(watch, "queued_at_ap", record, now))
        return out


__all__ = ["FORGET_S", "Deliveries", "Outcome", "Watch", "taken"]
