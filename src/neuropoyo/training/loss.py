"""Weighted mean-squared error over the readouts of a batch (paper A.4.3)."""

from __future__ import annotations

from torch import Tensor


def weighted_squared_errors(
    predictions: dict[str, Tensor],
    batch: dict[str, Tensor],
    readout_dims: dict[str, int],
) -> tuple[Tensor, Tensor]:
    """(sum_q w_q * mean_d (y_qd - yhat_qd)^2, sum_q w_q) over the real queries q of a batch: the
    two halves of :func:`weighted_mse`, kept apart so that processes holding parts of one batch
    can add them up before dividing.

    predictions: readout name -> (B, P, D_name); the query's own readout (output_decoder_index,
    in the order of ``readout_dims``) picks which prediction it is scored on. batch holds
    target_values (B, P, Dmax), target_weights (B, P), output_mask (B, P), output_decoder_index (B, P).
    """
    weights = batch["target_weights"] * batch["output_mask"]
    total = weights.new_zeros(())
    for index, (name, dim) in enumerate(readout_dims.items()):
        mine = weights * (batch["output_decoder_index"] == index)
        error = (predictions[name][..., :dim].float() - batch["target_values"][..., :dim]) ** 2
        total = total + (error.mean(dim=-1) * mine).sum()
    return total, weights.sum()


def weighted_mse(
    predictions: dict[str, Tensor],
    batch: dict[str, Tensor],
    readout_dims: dict[str, int],
) -> Tensor:
    """sum_q w_q * mean_d (y_qd - yhat_qd)^2 / sum_q w_q over the real queries q of a batch
    (shapes as in :func:`weighted_squared_errors`)."""
    total, weight = weighted_squared_errors(predictions, batch, readout_dims)
    return total / weight.clamp(min=1e-8)
