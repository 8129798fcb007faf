"""The package layout as a contract: the four layers import only as `eventvol.<layer>`, and
only downwards (research -> strategies -> pipelines -> data_lake), as ARCHITECTURE.md says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["data_lake", "pipelines", "strategies", "research"]  # bottom to top
SOURCES = ["eventvol", *LAYERS, "tests", "benchmarks", "examples"]


def _python_files() -> list[Path]:
    return sorted(p for d in SOURCES if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py"))


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_no_bare_layer_names():
    """`import research` would pick up any other project's `research` package (or a notebook
    folder of that name): every import names `eventvol.<layer>`."""
    bad = [f"{p.relative_to(ROOT)}:{line}: {mod}"
           for p in _python_files() for line, mod in _imported_modules(p)
           if mod.split(".")[0] in LAYERS]
    assert not bad, "bare layer imports:\n" + "\n".join(bad)


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_downwards(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    bad = []
    for p in sorted((ROOT / layer).rglob("*.py")):
        for line, mod in _imported_modules(p):
            parts = mod.split(".")
            if parts[0] == "eventvol" and len(parts) == 1:
                bad.append(f"{p.relative_to(ROOT)}:{line}: imports the front module eventvol")
            elif parts[0] == "eventvol" and parts[1] in LAYERS and parts[1] not in allowed:
                bad.append(f"{p.relative_to(ROOT)}:{line}: {mod}")
    assert not bad, f"{layer} imports a layer above it:\n" + "\n".join(bad)


def test_the_contract_catches_a_violation(tmp_path):
    """The checker itself: an upward import in a file is reported."""
    f = tmp_path / "x.py"
    f.write_text("from eventvol.research.cli import main\nimport pipelines.nb\n")
    assert [m for _, m in _imported_modules(f)] == ["eventvol.research.cli", "pipelines.nb"]
