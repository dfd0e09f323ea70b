"""Analog sizing as an inverse problem: performance targets in, sizing vectors out.

:class:`DiffusionSizer` is the conditional diffusion transformer of Azevedo, Lourenço & Martins
(an attention-based encoder-decoder backbone, v-prediction, cosine schedule with zero terminal
SNR, classifier-free guidance), trained and sampled by circml's C core. The paper's baselines have
the same API: :class:`DiffusionMLPSizer` (DM-MLP: the same diffusion, an MLP backbone),
:class:`InverseANNSizer` (an MLP from performances to sizes) and :class:`EvolutionarySizer`
(differential evolution with ngspice in the loop). See docs/sizing.md.
"""
from .baselines import (ANNConfig, DiffusionMLPSizer, EvolutionarySizer, EvolutionResult, InverseANNSizer,
                        MLPSizerConfig, spec_violation)
from .diffusion import (GUIDANCE_MODES, Callback, DiffusionSizer, MinMaxScale, PolynomialExpansion, RelaxSpecs,
                        SizerConfig, Standardize, parse_directions)

__all__ = ["DiffusionSizer", "SizerConfig", "RelaxSpecs", "MinMaxScale", "Standardize", "PolynomialExpansion",
           "parse_directions", "GUIDANCE_MODES", "Callback", "DiffusionMLPSizer", "MLPSizerConfig", "InverseANNSizer",
           "ANNConfig", "EvolutionarySizer", "EvolutionResult", "spec_violation"]


def __getattr__(name):
    # circml.sizing.report (the Table II report, a callable module) loads on first use, so that
    # `python -m circml.sizing.report` does not find it imported already
    if name == "report":
        import importlib
        return importlib.import_module(".report", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
