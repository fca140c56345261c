"""The import direction between layers (docs/architecture.md) holds for every module in src/."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "seriatim"

# layer -> seriatim subpackages/modules it must NOT import
FORBIDDEN: dict[str, set[str]] = {
    "records": {
        "storage",
        "protocol",
        "broker",
        "server",
        "cli",
        "testing",
        "coordinator",
        "state",
    },
    "storage": {"protocol", "broker", "server", "cli", "testing", "coordinator", "state"},
    "protocol": {"storage", "broker", "server", "cli", "testing", "coordinator", "state"},
    "coordinator": {"storage", "broker", "server", "cli", "testing", "state"},
    "broker": {"server", "cli", "testing"},
    "server": {"cli", "testing"},
    "state": {"broker", "server", "protocol", "cli", "testing", "coordinator"},
}
NO_ASYNCIO = {"records", "storage", "protocol", "coordinator"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layers_import_only_downwards() -> None:
    violations = []
    for layer, forbidden in FORBIDDEN.items():
        for path in (SRC / layer).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "seriatim" and len(parts) > 1 and parts[1] in forbidden:
                    violations.append(f"{path.relative_to(SRC)} imports {name}")
                if layer in NO_ASYNCIO and parts[0] == "asyncio":
                    violations.append(f"{path.relative_to(SRC)} imports asyncio")
    assert violations == []


def test_the_layer_walk_sees_modules() -> None:
    # Guards the test above against passing vacuously (e.g. a moved source tree).
    assert len(list(SRC.rglob("*.py"))) > 5
    assert "seriatim.storage" in _imports(SRC / "__init__.py")
