#!/usr/bin/env bash
# Set up circml from a fresh clone on Debian/Ubuntu: system packages (a C compiler, ngspice
# and its shared library), a virtual environment in .venv, and circml installed into it with
# its test extra. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v gcc >/dev/null 2>&1 || need_apt+=(gcc)
command -v ngspice >/dev/null 2>&1 || need_apt+=(ngspice)
[ -e /usr/include/ngspice/sharedspice.h ] || need_apt+=(libngspice0-dev)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
python3 -c "import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" \
  >/dev/null 2>&1 || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bootstrap: installing ${need_apt[*]} with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]'

# The tests check the C models against PyTorch twins (and the schedule against diffusers, the
# graphs against PyTorch Geometric) when those are importable (torch is never a
# runtime need). Install it only where a CPU wheel of the pinned release lies in pip's local
# find-links folder (as on our CI machines): elsewhere `pip install torch` can mean a multi-GB
# CUDA download, so it stays opt-in (CIRCML_WITH_TORCH=1 forces it, =0 skips it).
want_torch="${CIRCML_WITH_TORCH:-auto}"
if [ "$want_torch" = auto ]; then
  want_torch=0
  for d in ${PIP_FIND_LINKS:-} $(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true); do
    ls "$d"/torch-2.13.0+cpu-*.whl >/dev/null 2>&1 && want_torch=1
  done
fi
if [ "$want_torch" = 1 ] && ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "bootstrap: installing torch==2.13.0 (CPU), diffusers and torch_geometric for the agreement tests"
  .venv/bin/python -m pip install -q torch==2.13.0 "diffusers>=0.30" "torch_geometric>=2.5" networkx
fi
