"""The layout holds as the architecture says.

- trainer → contract ← service: the model repository's schema, the encodings and the catalogue
  live in `contract`, which both import; the trainer imports nothing from the service, the
  contract nothing from either, nor a runtime (TensorFlow, onnxruntime) or a web framework.
- The transports (`service/api/rest`, `service/api/grpc`) are translations over a
  protocol-neutral core that imports neither of them; neither transport imports the other; only
  the composition root (`service/server.py`) names them all; the service never imports
  TensorFlow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "service"
TRAINER = ROOT / "trainer"
CONTRACT = ROOT / "contract"
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


def test_the_trainer_imports_nothing_from_the_service():
    for path in module_files(TRAINER):
        crossing = {n for n in imports(path) if within(n, "service")}
        assert not crossing, f"{path.relative_to(ROOT)} imports {crossing}"


@pytest.mark.parametrize(
    "forbidden",
    ["service", "trainer", "tensorflow", "keras", "tf2onnx", "onnxruntime", "fastapi", "grpc"],
)
def test_the_contract_imports_neither_side_nor_a_runtime(forbidden):
    for path in module_files(CONTRACT):
        crossing = {n for n in imports(path) if within(n, forbidden)}
        assert not crossing, f"{path.relative_to(ROOT)} imports {crossing}"


@pytest.mark.parametrize("side", [TRAINER, SERVICE])
def test_both_sides_take_the_repository_schema_from_the_contract(side):
    users = [p for p in module_files(side) if any(within(n, "contract") for n in imports(p))]
    assert users, f"{side.name} does not use the contract"
