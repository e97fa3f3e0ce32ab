"""``storegw demo``: a whole simulated store on one machine, narrated in the terminal."""

from __future__ import annotations

from simulators.demo.run import run_demo

__all__ = ["run_demo"]
