"""The pure core compiled with mypyc, as the wheel build compiles it (setup.py), beside the
interpreted one: for the benchmark's two core rows and the test that both give the same results.

    python -m benchmarks.compiled_core rate N      events/s of the core that imports here
    python -m benchmarks.compiled_core rate-gc N   the same with the worker's collector thresholds
                                                   (streams/worker/collector.py), as a worker runs it
    python -m benchmarks.compiled_core digest N    a digest of everything the core computed
    python -m benchmarks.compiled_core heap N      its heap per open contact, N open, and what
                                                   their contact records hold

``build()`` copies the package and runs setup.py's mypyc build in place there, once per content of
streams/core (cached under ~/.cache/ccmon); ``run()`` runs a command above with a fresh copy of the
package holding those extension modules, or with the source tree, first on the path, and says
which core it ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("CCMON_KAFKA_CACHE", Path.home() / ".cache" / "ccmon")) / "compiled-core"


def _key() -> str:
    h = hashlib.sha256(f"{sys.version}|mypy {version('mypy')}".encode())
    for path in [ROOT / "setup.py", *sorted((ROOT / "streams" / "core").glob("*.py"))]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def build() -> tuple[Path, float]:
    """A copy of ``streams`` with its core compiled; and the seconds the compilation took (0 if cached)."""
    dest = CACHE / _key()
    if (dest / ".done").exists():
        return dest, 0.0
    tmp = dest.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shutil.copytree(ROOT / "streams", tmp / "streams", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(ROOT / "setup.py", tmp)
    shutil.copy(ROOT / "pyproject.toml", tmp)
    shutil.copy(ROOT / "README.md", tmp)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tmp,
        env={**os.environ, "CCMON_COMPILE_CORE": "1"},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mypyc build of streams/core failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    took = time.perf_counter() - started
    shutil.rmtree(tmp / "build", ignore_errors=True)
    (tmp / ".done").write_text(f"{took:.1f}\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest, took


def tree(dest: Path) -> Path:
    """``dest`` with today's ``streams`` package and the compiled core's extension modules in it (the
    cache holds only what the sources of streams/core decide; everything else is copied fresh)."""
    built, _ = build()
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "streams", dest / "streams", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for lib in built.glob("*.so"):  # mypyc's shared runtime of the group
        shutil.copy(lib, dest)
    for ext in (built / "streams" / "core").glob("*.so"):
        shutil.copy(ext, dest / "streams" / "core")
    return dest


def run(command: str, n: int, compiled: bool) -> dict[str, Any]:
    """``command`` (rate, digest or heap) over ``n`` events in a fresh interpreter, with the compiled core
    (a copy of the package with it, first on the path) or the interpreted one (the source tree)."""
    with tempfile.TemporaryDirectory(prefix="ccmon-compiled-") as tmp:
        cwd = tree(Path(tmp)) if compiled else ROOT
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)])}
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.compiled_core", command, str(n)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    if result["compiled"] != compiled:
        raise RuntimeError(
            f"expected the {'compiled' if compiled else 'interpreted'} core, ran {result['core']}"
        )
    return result


NOW = 1_795_420_000.0  # the digest's clock: the same events and the same "now" in every process


def _traffic(n: int) -> tuple[Any, list[Any]]:
    from benchmarks import workload
    from benchmarks.throughput import as_records
    from streams.config import load

    s = load({})
    return s, as_records(s, workload.mix(n, now=NOW))


def _digest(n: int) -> str:
    """Everything both stages computed from ``n`` events, batch by batch, then their whole state."""
    import orjson

    from streams.dev.local_pipeline import LocalPipeline

    s, records = _traffic(n)
    p = LocalPipeline(s)
    h = hashlib.sha256()
    now = NOW

    def canon(obj: Any) -> Any:
        """Dicts as sorted pairs (keys may be tuples); numbers as they are, so an int one core
        keeps and the other turns into a float (1 and 1.0: equal, but not the same changelog
        bytes) differs; any other object as its repr."""
        if isinstance(obj, dict):
            return sorted(([canon(k), canon(v)] for k, v in obj.items()), key=repr)
        if isinstance(obj, (list, tuple)):
            return [canon(x) for x in obj]
        return obj

    def put(obj: Any) -> None:
        h.update(orjson.dumps(canon(obj), default=repr))

    for i in range(0, len(records), s.batching.size):
        out = p.feed(records[i : i + s.batching.size], now=now)
        dead = [{k: v for k, v in orjson.loads(d.to_json()).items() if k != "rejected_at"} for d in out.dead]
        put([out.facts, dead, out.writes, dict(out.results)])
    put([p.lifecycle, p.queues, p.results])
    for queue, channel in sorted(p.store.series()):
        v = p.store.view(queue, channel, now)
        put([queue, channel, v.counters, v.dequeued, v.missed, v.wait_hist, v.handle_hist, v.waiting])
    put(sorted(p.store.agents()))
    return h.hexdigest()


def _contact_records(n: int) -> dict[str, float]:
    """The distinct objects (and their bytes, ``sys.getsizeof``) that the contact records of ``n``
    open contacts hold, per contact: exact, unlike the heap, so the two cores compare equal or not.
    mypyc keeps a float field unboxed and boxes it on every read, where the interpreter hands back
    the object it was given: a record holding what the interpreter shares would grow here."""
    import sys

    from benchmarks import workload
    from benchmarks.throughput import as_records
    from streams.config import load
    from streams.dev.local_pipeline import LocalPipeline

    s = load({})
    p = LocalPipeline(s)
    records = as_records(s, workload.open_contacts(n, 1000, int(NOW * 1000)))
    for i in range(0, len(records), s.batching.size):
        p.feed(records[i : i + s.batching.size], now=NOW)
    held: dict[int, object] = {}
    todo: list[object] = [v for k, v in p.lifecycle.items() if k.startswith("c|")]
    while todo:
        obj = todo.pop()
        if id(obj) not in held:
            held[id(obj)] = obj
            if isinstance(obj, list):
                todo.extend(obj)
    per_type: dict[str, int] = {}
    for obj in held.values():
        per_type[type(obj).__name__] = per_type.get(type(obj).__name__, 0) + 1
    return {
        "objects": len(held) / n,
        "bytes": sum(sys.getsizeof(obj) for obj in held.values()) / n,
        **{f"{name}s": count / n for name, count in sorted(per_type.items())},
    }


def _main() -> None:
    import streams.core.intake
    from streams.packaged import core_build

    command, n = sys.argv[1], int(sys.argv[2])
    core = Path(streams.core.intake.__file__ or "").name
    result: dict[str, Any] = {"core": core, "compiled": core_build() == "compiled"}
    if command == "rate-gc":
        from streams.worker.collector import tune

        tune()
        command = "rate"
    if command == "rate":
        from benchmarks import workload
        from benchmarks.throughput import core_rate
        from streams.config import load

        rate, state = core_rate(load({}), workload.mix(n))
        result.update(events_per_s=rate, state=state)
    elif command == "heap":
        from benchmarks.throughput import core_bytes_per_open_contact
        from streams.config import load

        result.update(bytes_per_open_contact=core_bytes_per_open_contact(load({}), n, 1000))
        result["contact_records"] = _contact_records(n)
    else:
        result["digest"] = _digest(n)
    print(json.dumps(result))


if __name__ == "__main__":
    _main()
