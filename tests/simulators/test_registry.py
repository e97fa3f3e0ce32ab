"""Every device kind can be tried without its hardware: some ``storegw sim`` plays it, and
every simulator the CLI lists has its command."""

from __future__ import annotations

import importlib

import pytest

from drivers import registry
from simulators.registry import SIMULATORS, for_kind


@pytest.mark.parametrize("kind", registry.names())
def test_every_registered_kind_has_a_simulator(kind: str) -> None:
    assert for_kind(kind), f"no simulator plays kind {kind!r}; add one to simulators/registry.py"


def test_simulators_play_only_known_kinds() -> None:
    known = set(registry.names())
    assert {k for sim in SIMULATORS.values() for k in sim.kinds} <= known


@pytest.mark.parametrize("name", sorted(SIMULATORS))
def test_every_simulator_has_a_command(name: str) -> None:
    assert callable(importlib.import_module(SIMULATORS[name].module).command)
