"""The training loss over the readouts of a batch: weighted mean-squared error for continuous
readouts (paper A.4.3), cross-entropy for classification readouts (POYO+), one weighted mean over
every query of the batch."""

from __future__ import annotations

from typing import Collection, Mapping

import torch.nn.functional as F
from torch import Tensor


def weighted_errors(
    predictions: dict[str, Tensor],
    batch: dict[str, Tensor],
    readout_dims: dict[str, int],
    *,
    classification: Collection[str] = (),
    task_weights: Mapping[str, float] | None = None,
) -> tuple[Tensor, Tensor]:
    """(sum_q w_q * c_r(q) * e_q, sum_q w_q) over the real queries q of a batch: the two halves of
    :func:`weighted_loss`, kept apart so that processes holding parts of one batch can add them up
    before dividing.

    e_q is mean_d (y_qd - yhat_qd)^2 for a continuous readout and the cross-entropy
    -log softmax(yhat_q)[y_q0] for a readout named in ``classification`` (its target holds the class
    index in column 0). c_r is the readout's weight in ``task_weights`` (default 1).
    predictions: readout name -> (B, P, D_name); the query's own readout (output_decoder_index,
    in the order of ``readout_dims``) picks which prediction it is scored on. batch holds
    target_values (B, P, Dmax), target_weights (B, P), output_mask (B, P), output_decoder_index (B, P).
    """
    weights = batch["target_weights"] * batch["output_mask"]
    total = weights.new_zeros(())
    for index, (name, dim) in enumerate(readout_dims.items()):
        mine = weights * (batch["output_decoder_index"] == index)
        if task_weights is not None:
            mine = mine * float(task_weights.get(name, 1.0))
        predicted = predictions[name][..., :dim].float()
        if name in classification:
            labels = batch["target_values"][..., 0].long().clamp(0, dim - 1)  # queries of other readouts: any row
            error = F.cross_entropy(predicted.flatten(0, 1), labels.flatten(), reduction="none").view_as(mine)
        else:
            error = ((predicted - batch["target_values"][..., :dim]) ** 2).mean(dim=-1)
        total = total + (error * mine).sum()
    return total, weights.sum()


def weighted_loss(
    predictions: dict[str, Tensor],
    batch: dict[str, Tensor],
    readout_dims: dict[str, int],
    **options,
) -> Tensor:
    """sum_q w_q * c_r(q) * e_q / sum_q w_q over the real queries q of a batch (shapes and options
    as in :func:`weighted_errors`)."""
    total, weight = weighted_errors(predictions, batch, readout_dims, **options)
    return total / weight.clamp(min=1e-8)
