"""Classic decoding baselines on binned spike counts: Wiener filter, MLP and GRU (Glaser et al.
2020), the Bayesian place-field decoder of position (Zhang et al. 1998), and logistic regression
and an MLP classifier for classification tasks.

The names below load on first use, so ``neuropoyo.baselines.binning`` (numpy only) can be read
without importing torch.
"""

import importlib

_HOMES = {
    "bin_spikes": "binning",
    "design": "binning",
    "lagged_counts": "binning",
    "BayesDecoder": "decoders",
    "GRUDecoder": "decoders",
    "LogisticRegression": "decoders",
    "MLPClassifier": "decoders",
    "MLPDecoder": "decoders",
    "WienerFilter": "decoders",
    "train_network": "decoders",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
