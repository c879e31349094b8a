"""The layout holds as the architecture says: the transports (`service/api/rest`,
`service/api/grpc`) are translations over a protocol-neutral core that imports neither of them;
neither transport imports the other; only the composition root (`service/server.py`) names
them all; and the service never imports TensorFlow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
TRANSPORTS = ("service.api.rest", "service.api.grpc")


def imports(path: Path) -> set[str]:
    """Every module `path` imports, wherever in the file (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def module_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_transport_imports_no_other_transport(transport):
    folder = SERVICE.parent / transport.replace(".", "/")
    others = [t for t in TRANSPORTS if t != transport]
    for path in module_files(folder):
        crossing = {n for n in imports(path) for o in others if within(n, o)}
        assert not crossing, f"{path.relative_to(SERVICE.parent)} imports {crossing}"


def test_the_core_imports_no_transport():
    for path in module_files(SERVICE):
        if "api" in path.relative_to(SERVICE).parts or path.name == "server.py":
            continue
        crossing = {n for n in imports(path) if within(n, "service.api")}
        assert not crossing, f"{path.relative_to(SERVICE.parent)} imports {crossing}"


def test_the_composition_root_starts_every_transport():
    names = imports(SERVICE / "server.py")
    for transport in TRANSPORTS:
        assert any(within(n, transport) for n in names), transport


def test_the_service_never_imports_tensorflow():
    for path in module_files(SERVICE):
        heavy = {
            n for n in imports(path) for t in ("tensorflow", "keras", "tf2onnx") if within(n, t)
        }
        assert not heavy, f"{path.relative_to(SERVICE.parent)} imports {heavy}"
