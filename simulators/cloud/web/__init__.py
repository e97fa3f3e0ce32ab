"""The cloud simulator's web side: the landing page a phone opens when it taps a sticker.

:func:`landing_app` builds the aiohttp application; :class:`LandingServer` serves it on a host
and port (``storegw sim cloud --web HOST:PORT``, or ``CloudService.landing()`` in tests).
"""

from __future__ import annotations

from simulators.cloud.web.app import LandingServer, landing_app
from simulators.cloud.web.verify import TapVerdict, verify_tap

__all__ = ["LandingServer", "TapVerdict", "landing_app", "verify_tap"]
