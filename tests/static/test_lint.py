"""The tree is lint-clean: ruff's rules, ruff's format and mypy find nothing, with the versions and
the configuration pinned in pyproject.toml (docs/development.md says why each rule is in or out).
mypy is strict on streams/core, which mypyc compiles trusting its annotations (a wrong annotation
there is a wrong result, not a type error), and checked everywhere else."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


def test_ruff_check_finds_nothing():
    done = run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_ruff_format_would_change_nothing():
    done = run("ruff", "format", "--check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_mypy_finds_nothing():
    done = run("mypy", "--no-incremental")
    assert done.returncode == 0 and done.stdout.startswith("Success: no issues found"), done.stdout[-6000:]


def test_the_core_is_checked_with_every_flag_of_mypy_strict():
    """mypy accepts ``strict`` only globally, so the core's section lists the flags one by one: this
    keeps the list equal to what ``--strict`` means in the pinned mypy."""
    from mypy.main import define_options

    _, _, strict = define_options()
    mypy = CONFIG["tool"]["mypy"]
    (core,) = [o for o in mypy["overrides"] if "streams.core" in o["module"]]
    assert set(core["module"]) == {"streams.core", "streams.core.*"}
    missing = {dest: value for dest, value in strict if core.get(dest, mypy.get(dest)) != value}
    assert not missing, f"streams.core is not checked with {missing}"


def test_the_linters_are_pinned_in_the_test_extra():
    test_extra = CONFIG["project"]["optional-dependencies"]["test"]
    assert any(d.startswith("ruff==") for d in test_extra), test_extra
    assert any(d.startswith("mypy==") for d in test_extra), test_extra
