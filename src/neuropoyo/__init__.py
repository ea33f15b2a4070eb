"""neuropoyo: POYO spike-token transformers for decoding behavior from many recordings."""

__version__ = "0.1.0"
