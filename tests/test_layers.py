"""The layers point one way: main.py → agent → tools, evals → agent and tools; nothing in the product imports tests."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top, inside functions or under TYPE_CHECKING."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("layer, forbidden", [("tools", {"agent", "evals", "tests", "main"}),
                                              ("agent", {"evals", "tests", "main"}),
                                              ("evals", {"tests", "main"})])  # fmt: skip
def test_no_module_imports_a_layer_above_it(layer, forbidden):
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for name in imported_modules(path)
        if _top(name) in forbidden
    }
    assert not wrong, sorted(wrong)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from agent.state import FilmState\n", encoding="utf-8")
    assert "agent.state" in imported_modules(sample)
