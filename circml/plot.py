"""Plots that read only arrays: t-SNE of circuit embeddings (scikit-learn + matplotlib).

Install with ``pip install circml[plot]``.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np


def tsne(embeddings: Union[np.ndarray, Dict[str, np.ndarray]], labels: Sequence, *, perplexity: float = 20.0,
         seed: int = 0, title: Optional[str] = None, label_names: Optional[Dict] = None, ax=None,
         metric: str = "cosine", legend: bool = True):
    """A t-SNE scatter of embeddings coloured by label (base circuit or family).

    ``embeddings`` may be one array [G, D] or a dict ``{panel title: array}``, e.g.
    ``{"untrained": e0, "pretrained": e1}`` to show them side by side as DICE's figures do.
    Returns the matplotlib ``Figure``.

    Example:
        >>> fig = tsne({"untrained": e0, "pretrained": e1}, labels=batch.base)  # doctest: +SKIP
        >>> fig.savefig("tsne.png")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    panels = embeddings if isinstance(embeddings, dict) else {title or "t-SNE": embeddings}
    labels = np.asarray(labels)
    uniq = list(dict.fromkeys(labels.tolist()))
    cmap = plt.get_cmap("tab20" if len(uniq) > 10 else "tab10")
    colour = {u: cmap(i % cmap.N) for i, u in enumerate(uniq)}
    if ax is None:
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(ax)
        fig = axes[0].figure
    for a, (name, emb) in zip(axes, panels.items()):
        emb = np.asarray(emb, dtype=np.float64)
        if len(emb) != len(labels):
            raise ValueError(f"{name!r}: {len(emb)} embeddings but {len(labels)} labels")
        perp = min(perplexity, max(2.0, (len(emb) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perp, metric=metric, init="random", random_state=seed).fit_transform(emb)
        for u in uniq:
            sel = labels == u
            name_u = label_names.get(u, u) if label_names else u
            a.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colour[u], label=str(name_u), alpha=0.85)
        a.set_title(name)
        a.set_xticks([])
        a.set_yticks([])
    if legend and len(uniq) <= 20:
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
