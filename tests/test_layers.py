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


# --- size: one concept per file, one screen per function ----------------------------------------------------

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60
# Product files and functions still over the limits, each with its reason; an entry is removed once it is within
# them (test_the_allowlists_are_not_stale says when).
LONG_FILES: dict[str, str] = {}
LONG_FUNCTIONS: dict[str, str] = {}


def product_files() -> list[Path]:
    return [
        ROOT / "main.py",
        *(p for layer in ("agent", "tools", "evals") for p in sorted((ROOT / layer).rglob("*.py"))),
    ]


def long_functions(path: Path, root: Path = ROOT) -> dict[str, int]:
    """Each function (methods and nested ones too) longer than MAX_FUNCTION_LINES, as 'file:Qual.name'."""
    found: dict[str, int] = {}
    rel = path.relative_to(root).as_posix()

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = child.end_lineno - child.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{rel}:{prefix}{child.name}"] = lines
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def file_lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_product_file_over_600_lines():
    long = {
        f"{p.relative_to(ROOT).as_posix()} ({n} lines)"
        for p in product_files()
        if (n := file_lines(p)) > MAX_FILE_LINES and p.relative_to(ROOT).as_posix() not in LONG_FILES
    }
    assert not long, f"split a concept out of: {sorted(long)}"


def test_no_product_function_over_60_lines():
    long = {
        f"{name} ({n} lines)"
        for p in product_files()
        for name, n in long_functions(p).items()
        if name not in LONG_FUNCTIONS
    }
    assert not long, f"split into named steps: {sorted(long)}"


def test_the_allowlists_are_not_stale():
    """An entry whose file or function is within the limits now (or is gone) is removed from the allowlist."""
    files = {p.relative_to(ROOT).as_posix(): file_lines(p) for p in product_files()}
    functions = {name for p in product_files() for name in long_functions(p)}
    stale = [f for f in LONG_FILES if files.get(f, 0) <= MAX_FILE_LINES]
    stale += [f for f in LONG_FUNCTIONS if f not in functions]
    assert not stale, f"within the limits now: remove {stale} from the allowlist in tests/test_layers.py"


def test_the_size_checker_sees_methods_and_nested_functions(tmp_path):
    def body(indent: int) -> str:
        return "".join(f"{' ' * indent}x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))

    sample = tmp_path / "tools" / "sample.py"
    sample.parent.mkdir()
    sample.write_text(
        f"class A:\n    def long(self):\n{body(8)}\n\ndef outer():\n    def inner():\n{body(8)}\n"
        f"def short():\n    return 1\n",
        encoding="utf-8",
    )
    assert set(long_functions(sample, tmp_path)) == {"tools/sample.py:A.long", "tools/sample.py:outer",
                                                     "tools/sample.py:outer.inner"}  # fmt: skip
