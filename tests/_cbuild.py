"""Build one of the plain-C test programs (csrc/tests/*.c) for a pytest file.

With AddressSanitizer + UBSan and OpenMP where the toolchain has them, else with OpenMP only,
else plain: the program's own checks run either way, the sanitizers when they can."""
import os
import shutil
import subprocess
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
