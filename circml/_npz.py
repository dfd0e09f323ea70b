"""Model files: named float32 arrays and a JSON header in one ``.npz``, with no pickle anywhere
(``np.load(path, allow_pickle=False)`` reads them). Used by the DICE encoder and the sizers."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np


def write_npz(path: Union[str, Path], header: dict, arrays: Dict[str, np.ndarray]) -> Path:
    """``arrays`` and the JSON ``header`` into ``path`` (``.npz`` appended when missing), written
    to a temporary file first: a crash mid-write leaves the old file, not half a new one. The
    path written."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    os.replace(tmp, path)
    return path


def read_npz(path: Union[str, Path], fmt: str, version: int, what: str,
             fmt_what: Optional[str] = None) -> Tuple[dict, Dict[str, np.ndarray]]:
    """The header and arrays of a file :func:`write_npz` wrote with ``header["format"] == fmt``
    (``.npz`` appended to ``path`` when only that exists); refuses other files and format versions
    outside ``1..version``. The errors name the kind of file ``what`` (e.g. "circml sizer"), and a
    file of another format ``fmt_what`` (default: "<fmt> file")."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".npz").exists():
        path = path.with_name(path.name + ".npz")
    with np.load(path, allow_pickle=False) as z:
        if "__header__" not in z.files:
            raise ValueError(f"{path}: not a {what} (no __header__ entry)")
        try:
            h = json.loads(bytes(z["__header__"]).decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: unreadable {what} header ({e})") from None
        if h.get("format") != fmt:
            raise ValueError(f"{path}: not a {fmt_what or fmt + ' file'} (format {h.get('format')!r})")
        v = h.get("version")
        if not isinstance(v, int) or not 1 <= v <= version:
            raise ValueError(f"{path}: {what} format version {v!r}; this circml reads versions 1..{version} "
                             "(a newer circml wrote it?)")
        return h, {k: z[k] for k in z.files if k != "__header__"}
