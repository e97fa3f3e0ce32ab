"""pyproject.toml says what runs: runtime dependencies are what runtime code imports, and each
hardware stack is an extra that a box without that hardware does not need."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.support.paths import REPO

RUNTIME = ("core", "drivers", "gateway", "provisioning", "simulators", "storegw")
OURS = set(RUNTIME)
HARDWARE_EXTRAS = ("nfc", "pcsc", "ble", "hid")


def _project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def _names(requirements: list[str]) -> set[str]:
    """Distribution names, normalised, without versions, markers or self-references."""
    out = set()
    for req in requirements:
        name = re.split(r"[\s<>=~!;\[]", req, maxsplit=1)[0]
        out.add(re.sub(r"[-_.]+", "-", name).lower())
    return out - {"storegw"}


def _imported_distributions(paths: list[Path]) -> dict[str, set[str]]:
    """Distribution -> the runtime files that import it (module level or inside a function;
    not under ``if TYPE_CHECKING``)."""
    by_module = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:  # read by the type checker only, never at run time
                continue
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top in OURS or top in sys.stdlib_module_names:
                    continue
                for dist in by_module.get(top, [top]):
                    name = re.sub(r"[-_.]+", "-", dist).lower()
                    found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def _runtime_files() -> list[Path]:
    return sorted(p for package in RUNTIME for p in (REPO / package).rglob("*.py"))


def test_runtime_code_imports_only_what_pyproject_declares_outside_dev() -> None:
    project = _project()
    extras: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    declared = _names(project["dependencies"])  # type: ignore[arg-type]
    for extra, requirements in extras.items():
        if extra != "dev":
            declared |= _names(requirements)
    imported = _imported_distributions(_runtime_files())
    undeclared = {dist: sorted(files) for dist, files in imported.items() if dist not in declared}
    assert undeclared == {}, "imported by runtime code but only a dev dependency (or none)"


def test_every_runtime_dependency_is_imported_by_runtime_code() -> None:
    imported = set(_imported_distributions(_runtime_files()))
    unused = _names(_project()["dependencies"]) - imported  # type: ignore[arg-type]
    assert unused == set(), "runtime dependencies nothing at runtime imports (dev or extra?)"


def test_each_hardware_stack_is_an_extra_and_all_collects_them() -> None:
    extras: dict[str, list[str]] = _project()["optional-dependencies"]  # type: ignore[assignment]
    base = _names(_project()["dependencies"])  # type: ignore[arg-type]
    for extra in HARDWARE_EXTRAS:
        assert _names(extras[extra]), extra
        assert not _names(extras[extra]) & base, f"[{extra}] is also a runtime dependency"
    everything = extras["all"][0]
    assert all(extra in everything for extra in HARDWARE_EXTRAS), everything


_WITHOUT_STACKS = """
import importlib.abc, sys

BLOCKED = {"nfc", "smartcard", "bleak", "evdev", "amqtt"}

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())

from pathlib import Path
from gateway.config import load_config
from gateway.daemon import Gateway
from drivers.registry import driver_class

cfg = load_config(Path(sys.argv[1]))
gateway = Gateway(cfg)
print("driver", driver_class("scanner").__name__, "devices", sorted(gateway.devices))
sys.argv = ["storegw", "config", "check", "-c", sys.argv[1]]
from storegw.cli import main
main()
"""


def test_a_scanner_only_box_runs_without_any_hardware_stack_installed(tmp_path: Path) -> None:
    config = tmp_path / "storegw.toml"
    config.write_text(
        f"""
[gateway]
store_id = "S001"
gateway_id = "gw-1"
data_dir = "{tmp_path / "data"}"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[devices]]
id = "till-scanner"
kind = "scanner"
port = "/dev/ttyACM0"
"""
    )
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_STACKS, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "driver ScannerDriver devices ['till-scanner']" in done.stdout
    assert "ok (store S001, gateway gw-1, 1 device(s))" in done.stdout
