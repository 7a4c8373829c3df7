"""The tests' layout holds: unit tests need nothing but the interpreter, static checks no broker,
integration tests are marked as such; and no test module imports another (what tests share lives
in tests/unit/helpers.py and tests/unit/helpers_fetch.py, tests/integration/support.py, the
conftest fixtures or the process harness, streams/dev/harness.py), so that moving or deleting one
test file breaks no other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
MODULES = sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path, root: Path = TESTS.parent) -> set[str]:
    """Every module ``path`` imports, anywhere in it (relative imports resolved against ``root``)."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)  # `from tests.x import test_y`
    return out


def is_test_module(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return name.startswith("tests.") and (last.startswith("test_") or last == "conftest")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_module_imports_another(path: Path):
    wrong = sorted(name for name in imported(path) if is_test_module(name))
    assert not wrong, (
        f"{path.relative_to(TESTS)} imports test modules {wrong}: move what they share to a helper"
    )


def test_the_checker_sees_such_imports(tmp_path: Path):
    probe = tmp_path / "tests" / "unit" / "test_probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "import tests.integration.conftest\n"
        "from tests.integration.test_two_workers import total_events\n"
        "from . import test_x\n"
        "from tests.unit.helpers import at\n"
        "def later():\n    from ..integration import test_cli\n"
    )
    found = {n for n in imported(probe, root=tmp_path) if is_test_module(n)}
    assert found == {
        "tests.integration.conftest",
        "tests.integration.test_two_workers",
        "tests.unit.test_x",
        "tests.integration.test_cli",
    }


def marked_integration(path: Path) -> bool:
    """Whether the module sets ``pytestmark`` to the integration marker (alone or in a list)."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "pytest.mark.integration" in ast.unparse(node.value)
    return False


def test_integration_modules_are_marked_and_the_others_are_not():
    for path in MODULES:
        if not path.name.startswith("test_"):
            continue
        assert marked_integration(path) == (path.parent.name == "integration"), path.relative_to(TESTS)


@pytest.mark.parametrize("path", [p for p in MODULES if p.parent.name == "unit"], ids=lambda p: p.name)
def test_unit_tests_start_no_process_and_no_broker(path: Path):
    assert not imported(path) & {"subprocess", "streams.dev.harness"}, path.name
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            args = {a.arg for a in node.args.args}
            assert not args & {"kafka", "workers", "browser"}, (
                f"{path.name}::{node.name} uses an integration fixture"
            )
