"""Head office's reports over what the simulated cloud recorded: :func:`store_report`
(``storegw sim cloud report``) and :func:`taps`, the one reader of sticker taps."""

from __future__ import annotations

from simulators.cloud.reports.head_office import store_report
from simulators.cloud.reports.taps import TAPS_TABLE, Tap, taps

__all__ = ["TAPS_TABLE", "Tap", "store_report", "taps"]
