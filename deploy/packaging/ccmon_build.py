"""ccmon's PEP 517 build backend: setuptools', plus mypy (mypyc) as a build requirement when
``CCMON_COMPILE_CORE=1`` asks for the compiled core (setup.py). A default build needs nothing but
setuptools, so ``pip install`` and editable installs stay quick and need no C compiler."""

from __future__ import annotations

import os
from typing import Any

from setuptools.build_meta import *  # noqa: F401,F403  (every other hook is setuptools')

# the mypy that checks streams/core in strict mode in the test suite compiles it too
MYPYC = "mypy==2.4.1"


def _compiler() -> list[str]:
    return [MYPYC] if os.environ.get("CCMON_COMPILE_CORE", "") == "1" else []


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    """setuptools' own hook would run setup.py, which imports mypyc before it is installed; ccmon
    declares no setup_requires, so its answer is just the compiler."""
    return _compiler()
