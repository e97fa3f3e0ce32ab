"""Shelf prices that follow the cloud: price lists, flash sales and label bindings.

See docs/pricing.md; :class:`PricingService` is what the daemon runs.
"""

from __future__ import annotations

from gateway.pricing.service import EVENT_KIND, PricingService

__all__ = ["EVENT_KIND", "PricingService"]
