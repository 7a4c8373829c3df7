"""The build of ccmon: everything is declared in pyproject.toml except what is compiled.

With ``CCMON_COMPILE_CORE=1`` the pure core (``streams/core/``, strict-typed, no I/O) is compiled
with mypyc, as black and charset-normalizer ship theirs: the hot path of stage 1 and stage 2 then
runs as C, and the ``.py`` sources stay in the wheel beside the extension modules. Without it (the
default, and every ``pip install`` from source on a machine without a C compiler) the same modules
run interpreted and give the same results (tests/unit/test_compiled_core.py). The in-tree build
backend (deploy/packaging/ccmon_build.py) adds mypy to the build requirements only when compiling.
"""

from __future__ import annotations

import os
from glob import glob

from setuptools import setup

COMPILE = os.environ.get("CCMON_COMPILE_CORE", "") == "1"
CORE = sorted(glob("streams/core/*.py"))  # one extension module each, sharing mypyc's runtime library


def ext_modules() -> list:
    if not COMPILE:
        return []
    from mypyc.build import mypycify  # only needed (and only installed, by the backend) when compiling

    return mypycify(CORE, opt_level="3", debug_level="0")


setup(ext_modules=ext_modules())
