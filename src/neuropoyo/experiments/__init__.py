"""Experiments that combine training, transfer and the baselines into a paper's tables and figures."""
