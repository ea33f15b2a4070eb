"""LAMB: layer-wise adaptive large-batch optimiser (You et al. 2020, "Large Batch Optimization for
Deep Learning: Training BERT in 76 minutes"), as used by POYO (Appendix A.4).

Per parameter tensor w with gradient g at step t:

    m = b1 m + (1 - b1) g          v = b2 v + (1 - b2) g^2
    u = m_hat / (sqrt(v_hat) + eps) + weight_decay * w      (m_hat, v_hat bias-corrected)
    trust = ||w|| / ||u||  (1 when either norm is 0)
    w = w - lr * trust * u

A param group with ``sparse_rows=True`` (embedding tables: unit and session rows) applies this to
the touched rows only: the rows R of dim 0 whose gradient is not entirely zero. Rows outside R keep
their weights, ``exp_avg`` and ``exp_avg_sq`` unchanged, so a unit absent from a batch does not
drift on stale momentum. For the rows in R:

    m_r, v_r as above; t_r = number of steps in which row r was touched
    m_hat_r = m_r / (1 - b1^t_r)    v_hat_r = v_r / (1 - b2^t_r)
    u_R = m_hat_R / (sqrt(v_hat_R) + eps) + weight_decay * w_R
    trust = ||w_R|| / ||u_R||  (1 when either norm is 0)
    w_R = w_R - lr * trust * u_R

torch_brain's SparseLamb also updates only the rows with a non-zero gradient, but it zeroes the
moments of the other rows, has no bias correction and takes both norms over the whole table. Here
the moments are kept (each row is an Adam that skips the steps it is absent from), its bias
correction counts that row's own steps, and the trust ratio is that of the touched rows: with a
large table and few touched rows a whole-table ||w|| would make the touched rows' step as large as
the table. In a sparse group ``state["step"]`` is the (rows,) int64 tensor of t_r.
"""

from __future__ import annotations

import torch


class Lamb(torch.optim.Optimizer):
    """LAMB with decoupled weight decay inside the trust-ratio update.

    Options given here are defaults for every param group; a group dict may override any of them,
    e.g. ``Lamb([{"params": [emb.weight], "sparse_rows": True}, {"params": rest}])``.
    """

    def __init__(
        self,
        params,
        *,
        lr: float = 4e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-4,
        bias_correction: bool = True,
        sparse_rows: bool = False,
    ):
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(
                f"Lamb: need lr > 0, eps > 0, weight_decay >= 0 and betas in [0, 1); "
                f"got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}"
            )
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            bias_correction=bias_correction,
            sparse_rows=sparse_rows,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:  # state dicts saved before the option existed are dense
            group.setdefault("sparse_rows", False)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["sparse_rows"] and any(p.ndim == 0 for p in group["params"]):
            raise ValueError(
                "Lamb: a sparse_rows group updates rows (dim 0) of its tensors, but it holds a "
                "0-dim parameter; put scalars in a group with sparse_rows=False"
            )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                if group["sparse_rows"]:
                    self._sparse_step(p, group)
                else:
                    self._dense_step(p, group)
        return loss

    def _dense_step(self, p: torch.Tensor, group: dict) -> None:
        b1, b2 = group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(b1).add_(p.grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        if group["bias_correction"]:
            m_hat = m / (1 - b1 ** state["step"])
            v_hat = v / (1 - b2 ** state["step"])
        else:
            m_hat, v_hat = m, v
        p.add_(_trust_scaled(p, m_hat, v_hat, group), alpha=-group["lr"])

    def _sparse_step(self, p: torch.Tensor, group: dict) -> None:
        """Masked rather than gathered, so the step needs no device-to-host sync."""
        b1, b2 = group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros(len(p), dtype=torch.int64, device=p.device)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        g = p.grad
        touched = g.reshape(len(p), -1).ne(0).any(dim=1)  # (rows,)
        state["step"].add_(touched)
        mask = touched.view(-1, *[1] * (p.ndim - 1))  # (rows, 1, ...)
        m = torch.where(mask, state["exp_avg"] * b1 + (1 - b1) * g, state["exp_avg"])
        v = torch.where(mask, state["exp_avg_sq"] * b2 + (1 - b2) * g * g, state["exp_avg_sq"])
        state["exp_avg"].copy_(m)
        state["exp_avg_sq"].copy_(v)
        if group["bias_correction"]:
            t = state["step"].double().view(mask.shape)  # 0 on never-touched rows, masked out next
            m, v = m / (1 - b1**t).to(p.dtype), v / (1 - b2**t).to(p.dtype)
        # zero on untouched rows: u = 0 / (0 + eps) + weight_decay * 0 there, outside both norms
        w, m, v = (torch.where(mask, x, 0) for x in (p, m, v))
        p.sub_(_trust_scaled(w, m, v, group), alpha=group["lr"])


def _trust_scaled(w: torch.Tensor, m_hat: torch.Tensor, v_hat: torch.Tensor, group: dict):
    """trust * u (same shape as ``w``) for weights ``w`` and bias-corrected moments m_hat, v_hat."""
    update = m_hat / (v_hat.sqrt() + group["eps"])
    if group["weight_decay"]:
        update.add_(w, alpha=group["weight_decay"])
    w_norm, u_norm = w.norm(), update.norm()
    trust = torch.where((w_norm > 0) & (u_norm > 0), w_norm / u_norm, torch.ones_like(w_norm))
    return update * trust
