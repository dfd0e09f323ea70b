"""Build circml's C core, the extension module ``circml._core``.

One Extension over every C file in csrc/ plus NumPy's headers. OpenMP is used when the
compiler accepts it (probed with a tiny program); otherwise the core builds serially and
says so. -O3, never -Ofast: the numerics rely on IEEE semantics.
"""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _compiler_accepts(flags):
    """Compile and link a small OpenMP program with the C compiler Python was built with."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        cmd = cc.split() + [path, "-o", os.path.join(tmp, "probe")] + flags
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


def _openmp_flags():
    if os.environ.get("CIRCML_NO_OPENMP"):
        return [], []
    if sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, lflags in candidates:
        if _compiler_accepts(cflags + lflags):
            return cflags, lflags
    warnings.warn("circml: the C compiler does not accept OpenMP; building the core serially")
    return [], []


omp_c, omp_l = _openmp_flags()
sources = sorted(
    os.path.relpath(p, HERE)
    for p in glob.glob(os.path.join(HERE, "csrc", "**", "*.c"), recursive=True)
    if os.sep + "tests" + os.sep not in p
)

core = Extension(
    "circml._core",
    sources=sources,
    include_dirs=[numpy.get_include(), "csrc"],
    define_macros=[("_GNU_SOURCE", None)],
    extra_compile_args=["-std=c11", "-O3", "-Wall", "-Wno-unknown-pragmas"] + omp_c,
    extra_link_args=omp_l,
    libraries=["m", "dl", "pthread"],
)

setup(ext_modules=[core])
