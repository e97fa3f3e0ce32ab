"""storegw: the daemon on the in-store box that joins store hardware to cloud member services."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("storegw")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+src"
