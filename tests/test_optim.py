"""LAMB against the formula by hand (dense and sparse-row groups), and the schedule's shape."""

import io
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


def _table(seed=0, shape=(5, 3)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _row_grad(touched, seed, shape=(5, 3)):
    """A gradient that is random on the ``touched`` rows and exactly zero on the others."""
    g = torch.zeros(shape, dtype=torch.float64)
    g[touched] = _table(seed, shape)[touched]
    return g


def _saved_and_loaded(state_dict):
    """``state_dict`` through torch.save and torch.load(weights_only=True), as in trainer.pt."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


SCHEDULE = [[0, 1, 2, 3, 4], [0, 2], [2], [0, 2]]  # touched rows per step: all, then rows 1, 3, 4 never


def test_sparse_rows_leave_untouched_rows_bit_identical():
    emb = torch.nn.Parameter(_table())
    opt = Lamb([{"params": [emb], "sparse_rows": True}], lr=0.05, weight_decay=0.1)
    dense = torch.nn.Parameter(_table())
    dense_opt = Lamb([dense], lr=0.05, weight_decay=0.1)
    for step, touched in enumerate(SCHEDULE):
        emb.grad, dense.grad = _row_grad(touched, step), _row_grad(touched, step)
        opt.step()
        dense_opt.step()
        if step == 0:
            state = opt.state[emb]
            after_first = [emb.detach().clone(), state["exp_avg"].clone(), state["exp_avg_sq"].clone()]
    state = opt.state[emb]
    untouched = [1, 3, 4]
    assert after_first[1][untouched].abs().min() > 0  # their momentum is not zero
    for now, then in zip((emb.detach(), state["exp_avg"], state["exp_avg_sq"]), after_first):
        assert torch.equal(now[untouched], then[untouched])
    assert state["step"].tolist() == [3, 1, 4, 1, 1] and state["step"].dtype == torch.int64
    # dense LAMB moves the same rows on their stale momentum
    assert not torch.equal(dense.detach()[untouched], after_first[0][untouched])


def test_sparse_rows_touched_rows_match_the_formula():
    """Rows 0, 1 at step 1 and rows 1, 2 at step 2: row 2's first update is bias-corrected as t=1."""
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-6, 0.1
    w0 = torch.tensor([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]], dtype=torch.float64)
    grads = [
        torch.tensor([[0.1, 0.2], [-0.3, 0.0], [0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[0.0, 0.0], [0.1, 0.3], [0.0, -0.2]], dtype=torch.float64),
    ]
    p = torch.nn.Parameter(w0.clone())
    opt = Lamb([{"params": [p], "sparse_rows": True}], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    w, m, v, t = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0), [0, 0, 0]
    for g in grads:
        p.grad = g.clone()
        opt.step()
        rows = [r for r in range(3) if g[r].abs().sum() > 0]
        u = {}
        for r in rows:
            t[r] += 1
            m[r] = b1 * m[r] + (1 - b1) * g[r]
            v[r] = b2 * v[r] + (1 - b2) * g[r] ** 2
            u[r] = (m[r] / (1 - b1 ** t[r])) / (torch.sqrt(v[r] / (1 - b2 ** t[r])) + eps) + wd * w[r]
        w_norm = math.sqrt(sum(float(w[r] @ w[r]) for r in rows))
        u_norm = math.sqrt(sum(float(u[r] @ u[r]) for r in rows))
        for r in rows:
            w[r] = w[r] - lr * (w_norm / u_norm) * u[r]
        torch.testing.assert_close(p.detach(), w, rtol=0, atol=1e-15)
    assert opt.state[p]["step"].tolist() == [1, 2, 1]


def test_sparse_rows_with_every_row_touched_equal_dense_lamb():
    sparse, dense = torch.nn.Parameter(_table()), torch.nn.Parameter(_table())
    opts = Lamb([{"params": [sparse], "sparse_rows": True}]), Lamb([dense])
    for step in range(3):
        sparse.grad, dense.grad = _table(10 + step), _table(10 + step)
        for opt in opts:
            opt.step()
    assert torch.equal(sparse.detach(), dense.detach())


def test_dense_group_is_unchanged_by_a_sparse_group_beside_it():
    dense, alone, emb = (torch.nn.Parameter(_table(s)) for s in (1, 1, 2))
    mixed = Lamb([{"params": [dense]}, {"params": [emb], "sparse_rows": True}], lr=0.05)
    single = Lamb([alone], lr=0.05)
    assert [g["sparse_rows"] for g in mixed.param_groups] == [False, True]
    for step, touched in enumerate(SCHEDULE):
        dense.grad, alone.grad, emb.grad = (_row_grad(touched, step) for _ in range(3))
        mixed.step()
        single.step()
    assert torch.equal(dense.detach(), alone.detach())
    assert mixed.state[dense]["step"] == single.state[alone]["step"] == len(SCHEDULE)


def test_sparse_state_survives_a_weights_only_round_trip():
    a, b = torch.nn.Parameter(_table()), torch.nn.Parameter(_table())
    first = Lamb([{"params": [a], "sparse_rows": True}])
    for step, touched in enumerate(SCHEDULE[:2]):
        a.grad = _row_grad(touched, step)
        first.step()
    b.data.copy_(a.data)
    second = Lamb([{"params": [b], "sparse_rows": True}])
    second.load_state_dict(_saved_and_loaded(first.state_dict()))
    assert second.state[b]["step"].dtype == torch.int64  # "step" is not cast to the weights' dtype
    for p, opt in ((a, first), (b, second)):
        p.grad = _row_grad(SCHEDULE[2], 2)
        opt.step()
    assert torch.equal(a.detach(), b.detach())


def test_state_dict_saved_before_sparse_rows_existed_loads_as_dense():
    p, q = torch.nn.Parameter(_table()), torch.nn.Parameter(_table())
    first = Lamb([p])
    p.grad = _table(10)
    first.step()
    old = _saved_and_loaded(first.state_dict())
    del old["param_groups"][0]["sparse_rows"]
    q.data.copy_(p.data)
    second = Lamb([q])
    second.load_state_dict(old)
    assert second.param_groups[0]["sparse_rows"] is False
    p.grad, q.grad = _row_grad([0], 11), _row_grad([0], 11)
    first.step()
    second.step()
    assert torch.equal(p.detach(), q.detach())


def test_sparse_rows_reject_scalar_parameters():
    with pytest.raises(ValueError, match="0-dim parameter"):
        Lamb([{"params": [torch.nn.Parameter(torch.tensor(1.0))], "sparse_rows": True}])


def test_schedule_constant_then_cosine_over_last_quarter():
    total = 1000
    values = [lr_factor(s, total) for s in range(total + 1)]
    assert all(v == 1.0 for v in values[:750])
    assert values[875] == pytest.approx(0.5)
    assert values[1000] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[750:], values[751:]))
    assert lr_factor(875, total, final=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(800, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * 50 / 250)))
