"""Dependencies run one way: ``producers`` uses ``streams``, never the other way round, and the
pure core imports nothing of the rest of ccmon but the configuration, nor Kafka, Faust or I/O
libraries. Checked on the import graph (every import statement, at any depth, parsed with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(package: str, root: Path = ROOT) -> dict[str, set[str]]:
    """file → the top-level-qualified modules it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(root))] = names
    return found


def test_streams_never_imports_producers():
    back = {
        f: sorted(n for n in names if n.split(".")[0] == "producers")
        for f, names in imports("streams").items()
    }
    assert not {f: n for f, n in back.items() if n}, back


def test_the_core_imports_no_io_kafka_or_the_rest_of_ccmon():
    allowed_ccmon = ("streams.core", "streams.config")
    banned = {
        "faust",
        "aiokafka",
        "mode",
        "prometheus_client",
        "socket",
        "asyncio",
        "subprocess",
        "producers",
    }
    bad = {}
    for f, names in imports("streams/core").items():
        wrong = sorted(
            n
            for n in names
            if n.split(".")[0] in banned or (n.startswith("streams") and not n.startswith(allowed_ccmon))
        )
        if wrong:
            bad[f] = wrong
    assert not bad, bad


def test_the_checker_sees_an_import_however_nested(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "cli.py").write_text(
        "def f():\n    if True:\n        from producers.scenario import load\n"
        "        import producers.simulate as sim\n"
    )
    assert imports("pkg", tmp_path) == {"pkg/cli.py": {"producers.scenario", "producers.simulate"}}


def test_production_code_imports_nothing_of_streams_dev():
    """streams/dev/ is for development, tests and demos: the worker and its libraries never import
    it (the crash points are streams/killpoints.py, the process check streams/processes.py). The
    CLI's development commands (``ccmon kafka``, ``ccmon demo``) are the one door to it."""
    bad = {
        f: sorted(n for n in names if n == "streams.dev" or n.startswith("streams.dev."))
        for f, names in imports("streams").items()
        if not f.startswith(("streams/dev/", "streams/cli/"))
    }
    assert not {f: n for f, n in bad.items() if n}, bad
