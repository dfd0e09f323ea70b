"""Plots that read only arrays: t-SNE of circuit embeddings (scikit-learn + matplotlib).

Install with ``pip install circml[plot]``.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np


def _colours(labels_unique: Sequence, plt) -> Dict:
    n = len(labels_unique)
    if n <= 10:
        cols = [plt.get_cmap("tab10")(i) for i in range(n)]
    elif n <= 20:
        cols = [plt.get_cmap("tab20")(i) for i in range(n)]
    else:   # more labels than a qualitative map has colours: spread them over a wide sequential map
        cols = list(plt.get_cmap("turbo")(np.linspace(0.03, 0.97, n)))
    return {u: tuple(c) for u, c in zip(labels_unique, cols)}


def tsne(embeddings: Union[np.ndarray, Mapping[str, np.ndarray]], labels: Union[Sequence, Mapping[str, Sequence]],
         *, perplexity: float = 20.0, seed: int = 0, title: Optional[str] = None, label_names: Optional[Dict] = None,
         ax=None, metric: str = "cosine", legend: bool = True, point_size: float = 14.0):
    """A t-SNE scatter of embeddings coloured by label (base circuit or family).

    ``embeddings`` may be one array [G, D] or a dict ``{panel title: array}``, e.g.
    ``{"untrained": e0, "pretrained": e1}`` to show them side by side as DICE's figures do.
    ``labels`` is one sequence of G labels, or a dict ``{row title: labels}`` to colour the same
    maps several ways (one row per labelling, e.g. by base circuit and by family); t-SNE runs
    once per panel and the rows share its coordinates. A label has the same colour in every
    panel. ``label_names`` maps labels to legend text. Returns the matplotlib ``Figure`` (one
    axis per panel and row, in ``fig.axes``, row-major).

    Raises ``ValueError`` when a panel's row count differs from a labelling's length, or a
    panel has fewer than 3 rows (t-SNE needs perplexity < rows).

    Example:
        >>> fig = tsne({"untrained": e0, "pretrained": e1}, labels=batch.base)  # doctest: +SKIP
        >>> fig = tsne({"untrained": e0, "pretrained": e1},
        ...            labels={"circuit": names, "family": families})     # 2 x 2 panels  # doctest: +SKIP
        >>> fig.savefig("tsne.png")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    panels = dict(embeddings) if isinstance(embeddings, Mapping) else {title or "t-SNE": embeddings}
    rows = dict(labels) if isinstance(labels, Mapping) else {"": labels}
    if not panels:
        raise ValueError("embeddings is an empty dict; give at least one panel")
    if not rows:
        raise ValueError("labels is an empty dict; give at least one labelling")
    rows = {r: np.asarray(lab) for r, lab in rows.items()}
    for r, lab in rows.items():
        if lab.ndim != 1:
            raise ValueError(f"labels{'[' + repr(r) + ']' if r else ''} must be one-dimensional, has shape {lab.shape}")
    arrays = {}
    for name, emb in panels.items():
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2:
            raise ValueError(f"{name!r}: embeddings must be [G, D], got shape {emb.shape}")
        for r, lab in rows.items():
            if len(emb) != len(lab):
                row = f" (labels {r!r})" if r else ""
                raise ValueError(f"{name!r}: {len(emb)} embeddings but {len(lab)} labels{row}")
        if len(emb) < 3:
            raise ValueError(f"{name!r}: t-SNE needs at least 3 embeddings, got {len(emb)}")
        if not np.isfinite(emb).all():
            raise ValueError(f"{name!r}: embeddings contain NaN or infinity")
        arrays[name] = emb

    n_rows, n_cols = len(rows), len(panels)
    if ax is None:
        fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.5 * n_cols, 5 * n_rows), squeeze=False)
    else:
        axes = np.atleast_1d(ax)
        if axes.size != n_rows * n_cols:
            raise ValueError(f"ax has {axes.size} axes for {n_rows} x {n_cols} panels")
        axes = axes.reshape(n_rows, n_cols)
        fig = axes.flat[0].figure

    coords = {}
    for name, emb in arrays.items():
        perp = min(perplexity, max(2.0, (len(emb) - 1) / 3))
        coords[name] = TSNE(n_components=2, perplexity=perp, metric=metric, init="random",
                            random_state=seed).fit_transform(emb)
    for i, (row, lab) in enumerate(rows.items()):
        uniq = list(dict.fromkeys(lab.tolist()))
        colour = _colours(uniq, plt)
        for j, (name, xy) in enumerate(coords.items()):
            a = axes[i, j]
            for u in uniq:
                sel = lab == u
                name_u = label_names.get(u, u) if label_names else u
                a.scatter(xy[sel, 0], xy[sel, 1], s=point_size, color=colour[u], label=str(name_u), alpha=0.85)
            a.set_title(f"{name}, by {row}" if row else name)
            a.set_xticks([])
            a.set_yticks([])
        if legend and len(uniq) <= 20:
            axes[i, -1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
