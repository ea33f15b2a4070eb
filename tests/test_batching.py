"""collate pads windows into a batch with exact masks (output sampling: SampleOutputs, test_pipeline.py)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from neuropoyo.tokens.collate import collate, pad_stack
from neuropoyo.schema import INPUT_KEYS, MODEL_KEYS, QUERY_KEYS
from test_tokenizer import UNIT_ROWS, make_tokenizer, small_recording


def fake_sample(rng: np.random.Generator, *, m: int, p: int, d: int) -> dict[str, np.ndarray]:
    """A per-window dict shaped like a training pipeline's output (tokens + weights), random values."""
    return {
        "input_unit_index": rng.integers(1, 50, m),
        "input_timestamps": rng.random(m).astype(np.float32),
        "input_token_type": rng.integers(0, 4, m),
        "input_values": rng.normal(size=m).astype(np.float32),
        "input_mask": np.ones(m, dtype=bool),
        "output_session_index": np.full(p, 3, dtype=np.int64),
        "output_timestamps": rng.random(p).astype(np.float32),
        "output_decoder_index": rng.integers(0, 2, p),
        "output_mask": np.ones(p, dtype=bool),
        "target_values": rng.normal(size=(p, d)).astype(np.float32),
        "target_weights": rng.random(p).astype(np.float32),
        "output_sample_index": np.arange(p, dtype=np.int64),
    }


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.integers(0, 20), st.integers(0, 3)), min_size=1, max_size=5
    )
)
def test_collate_pads_to_the_batch_max_and_masks_exactly_the_real_entries(sizes):
    rng = np.random.default_rng(len(sizes))
    samples = [fake_sample(rng, m=m, p=p, d=d) for m, p, d in sizes]
    batch = collate(samples)
    b, m_max = len(sizes), max(s[0] for s in sizes)
    p_max, d_max = max(s[1] for s in sizes), max(s[2] for s in sizes)
    assert batch.keys() == samples[0].keys() and set(MODEL_KEYS) <= batch.keys()
    assert all(batch[k].shape == (b, m_max) for k in INPUT_KEYS)
    assert "latent_index" not in batch and "latent_timestamps" not in batch  # the model's grid
    assert all(batch[k].shape == (b, p_max) for k in QUERY_KEYS if k != "target_values")
    assert batch["target_values"].shape == (b, p_max, d_max)
    assert batch["input_unit_index"].dtype == torch.int64
    assert batch["input_timestamps"].dtype == torch.float32
    assert batch["input_mask"].dtype == torch.bool
    m_len, p_len = torch.tensor([s[0] for s in sizes]), torch.tensor([s[1] for s in sizes])
    assert torch.equal(batch["input_mask"], torch.arange(m_max) < m_len[:, None])
    assert torch.equal(batch["output_mask"], torch.arange(p_max) < p_len[:, None])
    for i, sample in enumerate(samples):
        for key, array in sample.items():
            real = tuple(slice(0, n) for n in array.shape)
            assert np.array_equal(batch[key][i][real].numpy(), array), key
            padded = batch[key][i].clone()
            padded[real] = 0
            assert not padded.any(), key  # padding is 0 / False


def test_collate_real_tokenizer_output():
    recording, tokenizer = small_recording(), make_tokenizer()
    windows = [recording.slice(0.0, 1.0), recording.slice(4.25, 5.25), recording.slice(3.5, 4.5)]
    samples = [
        tokenizer.tokenize(w, unit_index=UNIT_ROWS, session_index=i) for i, w in enumerate(windows)
    ]
    batch = collate(samples)
    assert batch["input_mask"].sum(1).tolist() == [s["input_unit_index"].size for s in samples]
    assert batch["output_mask"].sum(1).tolist() == [s["output_timestamps"].size for s in samples]
    assert batch["input_mask"][1].sum() == 0  # the window inside the gap is all padding


def test_collate_refuses_mismatched_samples():
    rng = np.random.default_rng(0)
    a, b = fake_sample(rng, m=3, p=2, d=2), fake_sample(rng, m=4, p=1, d=2)
    with pytest.raises(ValueError, match="no samples"):
        collate([])
    with pytest.raises(ValueError, match="keys"):
        collate([a, {k: v for k, v in b.items() if k != "target_weights"}])
    with pytest.raises(ValueError, match="input_timestamps"):
        collate([a, {**b, "input_timestamps": b["input_timestamps"].astype(np.float64)}])
    with pytest.raises(ValueError, match="target_values"):
        collate([a, {**b, "target_values": b["target_values"][:, 0]}])


def test_pad_stack_zero_pads_every_axis():
    out = pad_stack([np.ones((2, 1), np.float32), np.full((1, 3), 2.0, np.float32)])
    assert out.dtype == np.float32 and out.shape == (2, 2, 3)
    assert out.tolist() == [[[1, 0, 0], [1, 0, 0]], [[2, 2, 2], [0, 0, 0]]]
