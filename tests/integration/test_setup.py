"""The README's set-up on a stock Debian Python: a clean checkout, PATH holding only /usr/bin:/bin
(so python3 is Debian's /usr/bin/python3, PEP 668 "externally managed"), deploy/setup.sh creates
.venv with it and installs ccmon there; the system interpreter is left alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.support import clean_checkout

pytestmark = pytest.mark.integration

DEBIAN_PYTHON = Path("/usr/bin/python3")


def system_site_files() -> set[str]:
    out = subprocess.run(
        [
            str(DEBIAN_PYTHON),
            "-c",
            "import sysconfig, os; p = sysconfig.get_path('purelib'); "
            "print('\\n'.join(sorted(os.listdir(p))) if os.path.isdir(p) else '')",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_setup_makes_a_venv_with_the_debian_python_and_ccmon_runs_from_it(tmp_path: Path):
    assert DEBIAN_PYTHON.exists(), "this machine should be Debian with its python3"
    stdlib = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").exists()  # pip into it is refused: hence .venv
    before = system_site_files()
    repo = clean_checkout(tmp_path / "ccmon")
    assert not (repo / ".venv").exists()
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}

    setup = subprocess.run(
        ["bash", "deploy/setup.sh", "demo"], cwd=repo, env=env, capture_output=True, text=True, timeout=900
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "creating the virtual environment .venv" in setup.stderr
    base = subprocess.run(
        [str(repo / ".venv/bin/python"), "-c", "import sys; print(sys.base_prefix)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert base == "/usr"  # the venv is the Debian python3's

    shown = subprocess.run(
        [str(repo / ".venv/bin/ccmon"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert all(cmd in shown.stdout for cmd in ("kafka", "worker", "simulate", "replay", "demo"))
    assert system_site_files() == before  # nothing installed into the system interpreter

    again = subprocess.run(
        ["bash", "deploy/setup.sh", "demo"], cwd=repo, env=env, capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0 and again.stderr == "", (
        again.stderr
    )  # idempotent: nothing to do the second time
