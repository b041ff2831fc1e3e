"""The import rules of ARCHITECTURE.md: dependencies point one way, the kernel is light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "budgets": {"budgets"},
    "archon.core": {"archon.core", "budgets"},
    "samplers": {"samplers", "archon.core", "budgets", "verifiers"},
    "verifiers": {"verifiers", "archon.core", "budgets"},
    "search": {"search", "archon.core", "budgets", "samplers", "verifiers"},
}
PROJECT = ("archon", "samplers", "verifiers", "search", "budgets")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return {m for m in out if m.split(".")[0] in PROJECT}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_lower_layers_never_import_higher_ones(layer):
    folder = ROOT.joinpath(*layer.split("."))
    files = list(folder.rglob("*.py"))
    assert files, f"{layer} has no modules"
    for f in files:
        for mod in imports_of(f):
            assert any(mod == a or mod.startswith(a + ".") for a in ALLOWED[layer]), f"{f}: imports {mod}"


def test_the_kernel_does_not_import_torch():
    light = "archon.core, archon.data, archon.models, budgets, samplers, verifiers"
    code = f"import sys, {light}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
