"""Build one of the plain-C test programs (csrc/tests/*.c) for a pytest file.

With AddressSanitizer + UBSan and OpenMP where the toolchain has them, else with OpenMP only,
else plain: the program's own checks run either way, the sanitizers when they can."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
_FLAVOURS = (["-fopenmp", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"], ["-fopenmp"], [])


def build(out_dir, name, sources, flags=()):
    """Compile ``sources`` (paths relative to the repository) into ``out_dir/name``; the
    executable's path, or None when no flavour compiles."""
    exe = Path(out_dir) / name
    for extra in _FLAVOURS:
        cmd = [CC, "-std=c11", "-O1", "-g", "-Wall", "-Wno-unknown-pragmas", *flags, *extra,
               *[str(ROOT / s) for s in sources], "-lm", "-o", str(exe)]
        if subprocess.run(cmd, capture_output=True, text=True).returncode == 0:
            return exe
    return None


def exe_fixture(name, sources, flags=()):
    """A module-scoped fixture giving the built program (skips without a C compiler)."""
    @pytest.fixture(scope="module")
    def exe(tmp_path_factory):
        if CC is None:
            pytest.skip("no C compiler")
        built = build(tmp_path_factory.mktemp(name), name, sources, flags)
        assert built is not None, f"could not compile {sources[0]}"
        return built
    return exe


def run_program(exe, threads="1", *args, timeout=600, **env):
    """Run a built test program with ``OMP_NUM_THREADS=threads`` and LeakSanitizer on (``env``:
    more variables); the completed process, output captured as text."""
    e = dict(os.environ, OMP_NUM_THREADS=str(threads), ASAN_OPTIONS="detect_leaks=1", **env)
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, env=e, timeout=timeout)


def check_counts(r):
    """After asserting that the program exited 0: the counts of its closing line
    ``N passed, M failed[, K skipped]`` as ``(passed, failed, skipped, line)``."""
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    line = r.stdout.strip().splitlines()[-1]
    w = line.split()
    return int(w[0]), int(w[2]), (int(w[4]) if len(w) > 4 else 0), line


def outputs_per_thread_count(tmp_path, script: str, threads=("1", "2", "3")):
    """Run ``script`` (Python source that saves one array with np.save to ``sys.argv[1]``) in a
    fresh interpreter per OpenMP thread count; the arrays, in ``threads`` order. Checks that a
    result has the same bits for any thread count need a process each: libgomp reads
    OMP_NUM_THREADS once."""
    import numpy as np
    path = tmp_path / "per_threads.py"
    path.write_text(script)
    outs = []
    for t in threads:
        out = tmp_path / f"out{t}.npy"
        env = dict(os.environ, OMP_NUM_THREADS=t)
        r = subprocess.run([sys.executable, str(path), str(out)], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(np.load(out))
    return outs


def json_per_thread_count(script: str, threads=("1", "2")):
    """Run ``script`` (Python source that prints one JSON value) with ``python -c`` in a fresh
    interpreter per OpenMP thread count; the decoded values, in ``threads`` order."""
    import json
    out = []
    for t in threads:
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, OMP_NUM_THREADS=t))
        assert r.returncode == 0, r.stderr[-3000:]
        out.append(json.loads(r.stdout))
    return out
