"""Classic decoding baselines on binned spike counts (Glaser et al. 2020)."""

from neuropoyo.baselines.binning import bin_spikes, design, lagged_counts
from neuropoyo.baselines.decoders import GRUDecoder, MLPDecoder, WienerFilter, train_network

__all__ = [
    "bin_spikes",
    "design",
    "lagged_counts",
    "GRUDecoder",
    "MLPDecoder",
    "WienerFilter",
    "train_network",
]
