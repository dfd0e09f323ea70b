"""The built-in circuit library: transistor-level SPICE benches written for circml.

Each entry of ``circml/data/circuits/catalog.tsv`` names a netlist, its family (ota, opamp,
delay_line, logic, ...), its domain (analog, digital, mixed) and a one-line description. The
netlists include the open 45 nm BSIM4 model cards in ``circml/data/models/ptm45.lib``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List, Optional

DATA_DIR = Path(__file__).resolve().parent / "data"
CIRCUITS_DIR = DATA_DIR / "circuits"
MODELS_DIR = DATA_DIR / "models"


@dataclass(frozen=True)
class LibraryCircuit:
    """A catalog entry. ``load()`` parses its netlist (includes resolved inside the data folder)."""

    name: str
    family: str
    domain: str
    description: str
    path: Path

    def load(self):
        """The parsed :class:`circml.Circuit` (a new object each call)."""
        from .circuit import read_netlist
        return read_netlist(self.path, include_dirs=[DATA_DIR])

    @property
    def circuit(self):
        return _load_cached(self.path)

    def text(self) -> str:
        return self.path.read_text()


@lru_cache(maxsize=None)
def _load_cached(path: Path):
    from .circuit import read_netlist
    return read_netlist(path, include_dirs=[DATA_DIR])


@lru_cache(maxsize=1)
def _catalog() -> tuple:
    rows = []
    with open(CIRCUITS_DIR / "catalog.tsv", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows.append(LibraryCircuit(r["name"], r["family"], r["domain"], r["description"],
                                       CIRCUITS_DIR / f"{r['name']}.sp"))
    return tuple(rows)


def circuit_library(family: Optional[str] = None, domain: Optional[str] = None) -> List[LibraryCircuit]:
    """The built-in circuits, optionally filtered by family and/or domain.

    Example:
        >>> from circml.datasets import circuit_library
        >>> otas = circuit_library(family="ota")
        >>> c = otas[0].circuit
    """
    out = list(_catalog())
    if family is not None:
        out = [c for c in out if c.family == family]
    if domain is not None:
        out = [c for c in out if c.domain == domain]
    return out


def families() -> List[str]:
    """Families present in the library, sorted."""
    return sorted({c.family for c in _catalog()})


def load_circuit(name: str):
    """Parse the library circuit called ``name``."""
    for c in _catalog():
        if c.name == name:
            return c.load()
    raise KeyError(f"no library circuit named {name!r}; see circml.datasets.circuit_library()")
