"""LAMB against the formula by hand, and the schedule's shape."""

import math

import pytest
import torch

from neuropoyo.training.lamb import Lamb
from neuropoyo.training.schedule import lr_factor


def test_lamb_two_steps_match_the_formula():
    w0 = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64)
    grads = [
        torch.tensor([[0.1, 0.2], [-0.3, 0.4]], dtype=torch.float64),
        torch.tensor([[-0.2, 0.05], [0.1, 0.3]], dtype=torch.float64),
    ]
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-6, 0.1
    p = torch.nn.Parameter(w0.clone())
    opt = Lamb([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    w, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        u = (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + eps) + wd * w
        w = w - lr * (torch.linalg.norm(w) / torch.linalg.norm(u)) * u
        torch.testing.assert_close(p.detach(), w, rtol=0, atol=1e-15)


def test_lamb_zero_weights_use_trust_one():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = Lamb([p], lr=0.1, weight_decay=0.0, eps=1e-12)
    p.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    opt.step()
    # First step: m_hat/sqrt(v_hat) = sign(g), trust ratio 1 because ||w|| = 0.
    torch.testing.assert_close(p.detach(), -0.1 * torch.sign(p.grad), rtol=0, atol=1e-9)


def test_lamb_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="lr > 0"):
        Lamb([torch.nn.Parameter(torch.zeros(1))], lr=0.0)


def test_schedule_constant_then_cosine_over_last_quarter():
    total = 1000
    values = [lr_factor(s, total) for s in range(total + 1)]
    assert all(v == 1.0 for v in values[:750])
    assert values[875] == pytest.approx(0.5)
    assert values[1000] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[750:], values[751:]))
    assert lr_factor(875, total, final=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(800, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 50 / 250)))
