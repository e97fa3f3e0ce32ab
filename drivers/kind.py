"""What a device kind declares about itself, so nothing else lists the kinds.

Each ``drivers/<kind>/kind.py`` holds one :class:`DeviceKind`; :mod:`drivers.registry` lists
those modules. The config model is imported with it (config loading needs every kind's), so
it must stay light; the driver and the probes name modules imported only when used, which
keeps pyscard, nfcpy, bleak and evdev out of processes that do not use them.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.base import DeviceConfig


@dataclass(frozen=True, slots=True)
class DeviceKind:
    name: str
    """The ``kind`` of a ``[[devices]]`` entry."""
    config: type[DeviceConfig]
    """Its pydantic model; a member of the config's discriminated union on ``kind``."""
    driver: str
    """Its :class:`drivers.base.Driver`: a class in the ``driver`` module beside the config
    (``drivers.<kind>.driver``), or ``module:Class`` anywhere."""
    test_prompt: str = "waiting"
    """What ``devices test`` asks the technician to do while it waits for a reading."""
    probes: str = ""
    """Module with ``presence(device)`` (doctor) and ``scans(options)`` (devices scan);
    by default ``probes`` beside the config (``drivers.<kind>.probes``)."""

    @property
    def driver_target(self) -> str:
        return self.driver if ":" in self.driver else f"{self._package}.driver:{self.driver}"

    @property
    def probes_module(self) -> str:
        return self.probes or f"{self._package}.probes"

    @property
    def _package(self) -> str:
        return self.config.__module__.rpartition(".")[0]
