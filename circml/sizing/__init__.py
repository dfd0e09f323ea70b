"""Analog sizing as an inverse problem: performance targets in, sizing vectors out.

:class:`DiffusionSizer` is the conditional diffusion transformer of Azevedo, Lourenço & Martins
(an attention-based encoder-decoder backbone, v-prediction, cosine schedule with zero terminal
SNR, classifier-free guidance), trained and sampled by circml's C core. See docs/sizing.md.
"""
from .diffusion import (GUIDANCE_MODES, Callback, DiffusionSizer, MinMaxScale, PolynomialExpansion, RelaxSpecs,
                        SizerConfig, Standardize, parse_directions)

__all__ = ["DiffusionSizer", "SizerConfig", "RelaxSpecs", "MinMaxScale", "Standardize", "PolynomialExpansion",
           "parse_directions", "GUIDANCE_MODES", "Callback"]
