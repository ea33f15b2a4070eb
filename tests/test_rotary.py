"""Rotary time embedding and rotary attention: exact properties in float64."""

import dataclasses
import json
import math

import pytest
import torch

from neuropoyo.errors import ConfigError
from neuropoyo.model import POYO, POYOConfig
from neuropoyo.model.attention import rotary_attention
from neuropoyo.model.rotary import RotaryTimeEmbedding, Rotation, rotary_periods, rotate

DTYPE = torch.float64


def rotation_matrix(t: float, periods: list[float], head_dim: int) -> torch.Tensor:
    """R(t) of paper A.1 written out: 2x2 blocks of angle 2*pi*t/T_i, then identity blocks. (D, D)."""
    r = torch.eye(head_dim, dtype=DTYPE)
    for i, period in enumerate(periods):
        a = 2 * math.pi * t / period
        r[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=DTYPE
        )
    return r


def direct_value_rotation_attention(q, k, v, tq, tk, periods, mask=None):
    """O(Nq * Nk) reference: z_j = sum_i a_ij R(t_i - t_j) v_i with explicit matrices.

    q: (B, H, Nq, D), k, v: (B, H, Nk, D), tq: (B, Nq), tk: (B, Nk), mask: (B, Nk) bool.
    """
    b, h, nq, d = q.shape
    nk = k.shape[2]
    out = torch.zeros_like(q)
    for bi in range(b):
        rq = [rotation_matrix(float(t), periods, d) for t in tq[bi]]
        rk = [rotation_matrix(float(t), periods, d) for t in tk[bi]]
        for hi in range(h):
            qr = torch.stack([rq[j] @ q[bi, hi, j] for j in range(nq)])
            kr = torch.stack([rk[i] @ k[bi, hi, i] for i in range(nk)])
            scores = qr @ kr.T / math.sqrt(d)
            if mask is not None:
                scores = scores.masked_fill(~mask[bi], float("-inf"))
            a = scores.softmax(-1)
            for j in range(nq):
                for i in range(nk):
                    rel = rotation_matrix(float(tk[bi, i] - tq[bi, j]), periods, d)
                    out[bi, hi, j] += a[j, i] * (rel @ v[bi, hi, i])
    return out


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_periods_follow_the_paper_formula_exactly():
    emb = RotaryTimeEmbedding(head_dim=64, rotate_fraction=0.5, t_min=1e-3, t_max=4.0)
    d = 32  # rotated dims
    expected = [1e-3 * (4.0 / 1e-3) ** (2 * i / d) for i in range(d // 2)]
    assert emb.rotate_dim == 32
    assert emb.periods == expected
    assert emb.periods[0] == 1e-3 and emb.periods[-1] < 4.0
    assert torch.equal(emb.omega, torch.tensor([2 * math.pi / p for p in expected], dtype=DTYPE))
    assert rotary_periods(rotate_dim=8, t_min=0.5, t_max=8.0) == [0.5, 1.0, 2.0, 4.0]


def test_exactly_half_of_each_head_is_rotated(gen):
    emb = RotaryTimeEmbedding(head_dim=64)
    x = torch.randn(2, 3, 5, 64, generator=gen, dtype=DTYPE)  # (B, H, T, D)
    t = torch.rand(2, 5, generator=gen, dtype=DTYPE)
    y = rotate(x, emb(t))
    assert torch.equal(y[..., 32:], x[..., 32:])  # identity blocks: bit-identical
    moved = (y[..., :32] - x[..., :32]).unflatten(-1, (16, 2)).norm(dim=-1)
    assert (moved > 0).all()  # every one of the 16 rotated pairs moves
    pair_norm = lambda z: z[..., :32].unflatten(-1, (16, 2)).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(pair_norm(y), pair_norm(x), rtol=0, atol=1e-12)


def test_rotate_fraction_is_configurable(gen):
    emb = RotaryTimeEmbedding(head_dim=64, rotate_fraction=0.25)
    x = torch.randn(1, 2, 3, 64, generator=gen, dtype=DTYPE)
    y = rotate(x, emb(torch.rand(1, 3, generator=gen, dtype=DTYPE)))
    assert emb.rotate_dim == 16
    assert torch.equal(y[..., 16:], x[..., 16:]) and not torch.equal(y[..., :16], x[..., :16])
    for fraction in (0.3, 0.28):  # 19.2 and 17.92 dims
        with pytest.raises(ValueError):
            RotaryTimeEmbedding(head_dim=64, rotate_fraction=fraction)


@pytest.mark.parametrize("head_axis", [-3, -2])
def test_rotate_equals_the_block_diagonal_matrix(gen, head_axis):
    emb = RotaryTimeEmbedding(head_dim=16)
    t = torch.tensor([[0.0, 0.0137, 0.5, 0.999]], dtype=DTYPE)
    x = torch.randn(1, 3, 4, 16, generator=gen, dtype=DTYPE)  # (B, H, T, D)
    layout = x if head_axis == -3 else x.transpose(1, 2)  # (B, T, H, D)
    y = rotate(layout, emb(t), head_axis=head_axis)
    y = y if head_axis == -3 else y.transpose(1, 2)
    for j in range(4):
        r = rotation_matrix(float(t[0, j]), emb.periods, 16)
        torch.testing.assert_close(y[0, :, j], x[0, :, j] @ r.T, rtol=0, atol=1e-12)


def test_rotations_compose_and_invert(gen):
    emb = RotaryTimeEmbedding(head_dim=32)
    x = torch.randn(2, 4, 6, 32, generator=gen, dtype=DTYPE)
    a = torch.rand(2, 6, generator=gen, dtype=DTYPE)
    b = torch.rand(2, 6, generator=gen, dtype=DTYPE) - 0.5
    # angles reach 2*pi/1ms ~ 6e3 rad, so float64 angle rounding is ~1e-12
    torch.testing.assert_close(rotate(rotate(x, emb(a)), emb(b)), rotate(x, emb(a + b)), rtol=0, atol=1e-10)
    torch.testing.assert_close(rotate(rotate(x, emb(a)), emb(a).inverse()), x, rtol=0, atol=1e-12)
    inverse, negative = emb(a).inverse(), emb(-a)
    torch.testing.assert_close(inverse.phase, negative.phase, rtol=0, atol=1e-15)


def test_rotated_dot_products_depend_only_on_time_differences(gen):
    emb = RotaryTimeEmbedding(head_dim=32)
    q = torch.randn(1, 1, 5, 32, generator=gen, dtype=DTYPE)
    k = torch.randn(1, 1, 7, 32, generator=gen, dtype=DTYPE)
    tq = torch.rand(1, 5, generator=gen, dtype=DTYPE)
    tk = torch.rand(1, 7, generator=gen, dtype=DTYPE)

    def scores(tq, tk):
        return rotate(q, emb(tq)) @ rotate(k, emb(tk)).transpose(-1, -2)

    reference = scores(tq, tk)
    for offset in (0.25, -3.0, 123.456):
        torch.testing.assert_close(scores(tq + offset, tk + offset), reference, rtol=0, atol=1e-9)
    assert (scores(tq + 0.01, tk) - reference).abs().max() > 1e-2  # but do depend on differences


def test_rotation_follows_the_timestamp_dtype():
    emb = RotaryTimeEmbedding(head_dim=8)
    assert emb(torch.zeros(3, dtype=torch.float32)).phase.dtype == torch.float32
    rotation = emb(torch.zeros(3, dtype=DTYPE))
    assert isinstance(rotation, Rotation) and rotation.phase.dtype == DTYPE
    assert rotation.phase.shape == (3, 4, 2)  # (cos, sin) per pair of the head


def test_bfloat16_is_rotated_in_float32_and_cast_back(gen):
    emb = RotaryTimeEmbedding(head_dim=16)
    x = torch.randn(2, 5, 3, 16, generator=gen).to(torch.bfloat16)  # (B, T, H, D)
    t = torch.rand(2, 5, generator=gen)
    y = rotate(x, emb(t), head_axis=-2)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, rotate(x.float(), emb(t), head_axis=-2).to(torch.bfloat16), rtol=0, atol=0)


@pytest.mark.parametrize("head_axis", [-3, -2])
def test_the_compiled_real_arithmetic_rotation_equals_the_eager_complex_one(gen, head_axis):
    """Under torch.compile, rotate takes its real-arithmetic branch (traced here with the eager
    backend: the same graph inductor would fuse, without generating C++)."""
    emb = RotaryTimeEmbedding(head_dim=16)
    x = torch.randn(2, 3, 5, 16, generator=gen, dtype=DTYPE)  # (B, H, T, D)
    x = x if head_axis == -3 else x.transpose(1, 2)
    rotation = emb(torch.rand(2, 5, generator=gen, dtype=DTYPE) * 100)
    traced = torch.compile(rotate, backend="eager", fullgraph=True)
    for r in (rotation, rotation.inverse()):
        torch.testing.assert_close(traced(x, r, head_axis=head_axis), rotate(x, r, head_axis=head_axis), rtol=0, atol=1e-12)
    half = x.to(torch.bfloat16)
    torch.testing.assert_close(traced(half, rotation, head_axis=head_axis), rotate(half, rotation, head_axis=head_axis))
    torch._dynamo.reset()


@pytest.mark.parametrize("masked", [False, True])
def test_value_rotation_equals_the_direct_quadratic_form(gen, masked):
    emb = RotaryTimeEmbedding(head_dim=8, t_min=0.01, t_max=2.0)
    q = torch.randn(2, 2, 3, 8, generator=gen, dtype=DTYPE)
    k = torch.randn(2, 2, 5, 8, generator=gen, dtype=DTYPE)
    v = torch.randn(2, 2, 5, 8, generator=gen, dtype=DTYPE)
    tq = torch.rand(2, 3, generator=gen, dtype=DTYPE)
    tk = torch.rand(2, 5, generator=gen, dtype=DTYPE)
    mask = torch.tensor([[True] * 5, [True, True, False, True, False]]) if masked else None
    tokens_major = [x.transpose(1, 2) for x in (q, k, v)]  # (B, N, H, D), the layers' layout
    fast = rotary_attention(
        *tokens_major, q_rotation=emb(tq), k_rotation=emb(tk), key_mask=mask, rotate_value=True
    ).transpose(1, 2)
    direct = direct_value_rotation_attention(q, k, v, tq, tk, emb.periods, mask)
    torch.testing.assert_close(fast, direct, rtol=0, atol=1e-10)
    plain = rotary_attention(*tokens_major, q_rotation=emb(tq), k_rotation=emb(tk), key_mask=mask)
    plain = plain.transpose(1, 2)
    assert (plain - fast).abs().max() > 1e-3  # value rotation is not a no-op


def test_attention_without_value_rotation_is_softmax_of_rotated_scores(gen):
    emb = RotaryTimeEmbedding(head_dim=8)
    q = torch.randn(1, 2, 3, 8, generator=gen, dtype=DTYPE)
    k = torch.randn(1, 2, 4, 8, generator=gen, dtype=DTYPE)
    v = torch.randn(1, 2, 4, 8, generator=gen, dtype=DTYPE)
    tq = torch.rand(1, 3, generator=gen, dtype=DTYPE)
    tk = torch.rand(1, 4, generator=gen, dtype=DTYPE)
    tokens_major = [x.transpose(1, 2) for x in (q, k, v)]
    out = rotary_attention(*tokens_major, q_rotation=emb(tq), k_rotation=emb(tk)).transpose(1, 2)
    scores = rotate(q, emb(tq)) @ rotate(k, emb(tk)).transpose(-1, -2) / math.sqrt(8)
    torch.testing.assert_close(out, scores.softmax(-1) @ v, rtol=0, atol=1e-12)


def test_inclusive_spacing_hits_both_ends_exactly_and_is_log_uniform():
    periods = rotary_periods(rotate_dim=32, t_min=1e-4, t_max=2.0627, spacing="inclusive")
    assert len(periods) == 16 and periods[0] == 1e-4 and periods[-1] == 2.0627
    ratios = [b / a for a, b in zip(periods, periods[1:])]
    assert max(ratios) - min(ratios) < 1e-12  # a constant ratio: log-uniform
    assert rotary_periods(rotate_dim=10, t_min=0.5, t_max=8.0, spacing="inclusive") == pytest.approx(
        [0.5, 1.0, 2.0, 4.0, 8.0], rel=1e-15
    )
    assert rotary_periods(rotate_dim=2, t_min=0.5, t_max=8.0, spacing="inclusive") == [0.5]
    with pytest.raises(ValueError, match="spacing"):
        rotary_periods(rotate_dim=8, t_min=0.5, t_max=8.0, spacing="linear")


def test_default_spacing_is_the_half_open_formula():
    emb = RotaryTimeEmbedding(head_dim=64, t_min=1e-3, t_max=4.0)
    half_open = RotaryTimeEmbedding(head_dim=64, t_min=1e-3, t_max=4.0, spacing="half_open")
    assert emb.periods == half_open.periods == [1e-3 * 4000.0 ** (2 * i / 32) for i in range(16)]
    inclusive = RotaryTimeEmbedding(head_dim=64, t_min=1e-3, t_max=4.0, spacing="inclusive")
    assert inclusive.periods[-1] == 4.0 > emb.periods[-1]


def test_explicit_periods_replace_the_formula():
    emb = RotaryTimeEmbedding(head_dim=8, periods=[0.25, 3.0])
    assert emb.periods == [0.25, 3.0]
    assert torch.equal(emb.omega, torch.tensor([2 * math.pi / 0.25, 2 * math.pi / 3.0], dtype=DTYPE))
    for bad in ([1.0], [1.0, 0.0]):
        with pytest.raises(ValueError, match="2 positive"):
            RotaryTimeEmbedding(head_dim=8, periods=bad)


def test_rotary_options_round_trip_through_the_config():
    default = POYOConfig()
    assert default.rotary_spacing == "half_open" and default.rotary_periods_s == []
    config = POYOConfig(
        head_dim=8, t_min=1e-4, t_max=2.0627, rotary_spacing="inclusive", rotary_periods_s=[1e-4, 2]
    )
    assert POYOConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.rotary_periods_s == [1e-4, 2.0]  # ints become floats
    assert POYO(config).rotary.periods == [1e-4, 2.0]
    assert POYO(dataclasses.replace(config, rotary_periods_s=[])).rotary.periods == [1e-4, 2.0627]
    with pytest.raises(ConfigError, match="rotary_spacing"):
        POYOConfig(rotary_spacing="both")
    with pytest.raises(ConfigError, match="rotary_periods_s must list 16"):
        POYOConfig(rotary_periods_s=[1.0, 2.0])
