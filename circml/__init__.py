"""circml: machine learning on transistor-level circuits.

Read SPICE netlists into flattened circuits and DICE-style device-level graphs, with the
heavy lifting in a C core::

    >>> import circml
    >>> c = circml.parse_netlist('''* rc
    ... R1 in out 1k
    ... C1 out 0 1p
    ... V1 in 0 DC 1
    ... .end''')
    >>> c.n_devices
    3
    >>> g = c.to_graph()
    >>> g.x.shape
    (5, 9)
"""
from ._core import NetlistError, UnsafeNetlistError
from .circuit import Circuit, Device, parse_netlist, read_netlist
from .graph import EDGE_TYPES, NODE_TYPES, Graph, collate, graphs_from_circuits

__version__ = "0.1.0"

__all__ = [
    "Circuit", "Device", "Graph", "NetlistError", "UnsafeNetlistError", "parse_netlist", "read_netlist",
    "collate", "graphs_from_circuits", "NODE_TYPES", "EDGE_TYPES", "__version__",
]
