"""POYO network: invariances of the whole model (float64, eval mode), the latent grid, vocabulary
growth, config, sizes."""

import dataclasses
import json

import pytest
import torch
from conftest import TINY_MODEL
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from neuropoyo.model import POYO, POYOConfig, forward_flops, latent_grid, model_info, train_step_flops
from neuropoyo.model.poyo import ENCODER_GROUP
from neuropoyo.schema import END, SPIKE, START
from neuropoyo.training.config import PRESET_DIR, RunConfig

PAPER_PARAMS = {"paper-mp-L6": 3.8e6, "paper-mp-L14": 7.4e6, "paper-mp-L26": 13e6}


def tiny_config(**overrides) -> POYOConfig:
    """A small model whose outputs are O(1) (init_std 0.1), so invariance tests are not trivially tiny."""
    # The shared tiny model with more of everything the invariances act on: units, sessions,
    # readouts, heads, layers, latents, dropout (off in eval mode, checked in train mode).
    fields = dict(
        TINY_MODEL,
        num_units=12,
        num_sessions=3,
        readouts={"hand_vel": 2, "cursor_pos": 3},
        cross_heads=2,
        depth=2,
        ffn="geglu",
        latents_per_timestamp=3,
        ffn_dropout=0.3,
        linear_dropout=0.3,
        attention_dropout=0.3,
        task_embedding=True,
        init_std=0.1,
    )
    return POYOConfig(**(fields | overrides))


def make_model(**overrides) -> POYO:
    torch.manual_seed(0)
    return POYO(tiny_config(**overrides)).double().eval()


def make_window(gen, *, units, session, num_outputs=6, start=0.0, length=1.0, silent=(), rate=5):
    """One window's tokens: START/END per unit at start / start + length, spikes for non-silent units."""
    unit, time, kind = [], [], []
    for u in units:
        n = 0 if u in silent else int(torch.randint(1, 2 * rate, (1,), generator=gen))
        spikes = (start + length * torch.rand(n, generator=gen, dtype=torch.float64)).tolist()
        unit += [u] * (n + 2)
        time += [start, start + length] + spikes
        kind += [START, END] + [SPIKE] * n
    return dict(
        unit=torch.tensor(unit),
        time=torch.tensor(time, dtype=torch.float64),
        type=torch.tensor(kind),
        start=start,
        length=length,
        session=session,
        out_time=start + length * torch.rand(num_outputs, generator=gen, dtype=torch.float64),
        decoder=torch.randint(0, 2, (num_outputs,), generator=gen),
    )


def collate(model, windows, gen, *, extra_inputs=0, extra_outputs=0):
    """Pad windows to one batch; padded slots get random garbage so that only the masks can hide them.

    Each window's latents sit on the model's grid over [start, start + length] (float64), passed as
    the (B, N) ``latent_timestamps`` override, so shifting a window shifts its latents too.
    """
    m = max(len(w["unit"]) for w in windows) + extra_inputs
    p = max(len(w["out_time"]) for w in windows) + extra_outputs
    b = len(windows)
    batch = dict(
        input_unit_index=torch.randint(0, model.config.num_units, (b, m), generator=gen),
        input_timestamps=5 * torch.rand(b, m, generator=gen, dtype=torch.float64),
        input_token_type=torch.randint(0, 3, (b, m), generator=gen),
        input_mask=torch.zeros(b, m, dtype=torch.bool),
        output_session_index=torch.randint(0, model.config.num_sessions, (b, p), generator=gen),
        output_timestamps=5 * torch.rand(b, p, generator=gen, dtype=torch.float64),
        output_decoder_index=torch.randint(0, 2, (b, p), generator=gen),
        output_mask=torch.zeros(b, p, dtype=torch.bool),
    )
    times = []
    for i, w in enumerate(windows):
        n, q = len(w["unit"]), len(w["out_time"])
        batch["input_unit_index"][i, :n] = w["unit"]
        batch["input_timestamps"][i, :n] = w["time"]
        batch["input_token_type"][i, :n] = w["type"]
        batch["input_mask"][i, :n] = True
        batch["output_session_index"][i, :q] = w["session"]
        batch["output_timestamps"][i, :q] = w["out_time"]
        batch["output_decoder_index"][i, :q] = w["decoder"]
        batch["output_mask"][i, :q] = True
        _, grid = model.latent_grid(w["length"])
        times.append(grid.to(torch.float64) + w["start"])
    batch["latent_timestamps"] = torch.stack(times)
    return batch


def shifted(window, offset):
    return window | dict(
        time=window["time"] + offset, start=window["start"] + offset, out_time=window["out_time"] + offset
    )


def assert_outputs_close(a, b, atol):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol)


def max_difference(a, b):
    return max((a[name] - b[name]).abs().max().item() for name in a)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1)


@pytest.fixture
def model():
    return make_model()


@pytest.mark.parametrize("token_type_embedding", [False, True])
def test_whole_model_is_time_shift_invariant(gen, token_type_embedding):
    model = make_model(token_type_embedding=token_type_embedding)
    windows = [make_window(gen, units=[0, 3, 5], session=1), make_window(gen, units=[2, 7], session=2)]
    with torch.no_grad():
        out = model(**collate(model, windows, torch.Generator().manual_seed(9)))
        moved = [shifted(w, offset) for w, offset in zip(windows, (123.456, 7.25))]  # per window
        out_moved = model(**collate(model, moved, torch.Generator().manual_seed(9)))
        inputs_only = [w | dict(time=w["time"] + 0.05) for w in windows]
        out_inputs_only = model(**collate(model, inputs_only, torch.Generator().manual_seed(9)))
        batch = collate(model, moved, torch.Generator().manual_seed(9))
        out_latents_fixed = model(**(batch | dict(latent_timestamps=None)))  # latents left at [0, T]
    assert max(y.abs().max().item() for y in out.values()) > 0.1  # outputs are O(1)
    assert_outputs_close(out_moved, out, atol=1e-10)
    assert max_difference(out_inputs_only, out) > 1e-3  # relative timing does matter
    assert max_difference(out_latents_fixed, out) > 1e-3  # and so do the latent times


def test_default_latent_times_are_the_buffer_for_windows_starting_at_zero(gen, model):
    windows = [make_window(gen, units=[0, 3], session=1), make_window(gen, units=[2, 7], session=2)]
    batch = collate(model, windows, gen)
    with torch.no_grad():
        explicit = model(**batch)  # (B, N)
        shared = model(**(batch | dict(latent_timestamps=model.latent_timestamps)))  # (N,)
        default = model(**(batch | dict(latent_timestamps=None)))
    assert_outputs_close(shared, explicit, atol=0)
    assert_outputs_close(default, explicit, atol=0)


def test_spike_token_order_does_not_matter(gen, model):
    window = make_window(gen, units=[1, 4, 6, 9], session=0)
    perm = torch.randperm(len(window["unit"]), generator=gen)
    permuted = window | {key: window[key][perm] for key in ("unit", "time", "type")}
    with torch.no_grad():
        out = model(**collate(model, [window], gen))
        out_permuted = model(**collate(model, [permuted], gen))
    assert_outputs_close(out_permuted, out, atol=1e-12)


def test_padding_does_not_change_outputs(gen, model):
    window = make_window(gen, units=[0, 2], session=1, num_outputs=4)
    longer = make_window(gen, units=[1, 3, 5, 7, 9, 11], session=2, num_outputs=9, rate=20)
    with torch.no_grad():
        alone = model(**collate(model, [window], gen))
        padded = model(**collate(model, [longer, window], gen, extra_inputs=7, extra_outputs=3))
    assert padded["hand_vel"].shape[1] == 12
    for name, y in alone.items():
        torch.testing.assert_close(padded[name][1, :4], y[0], rtol=0, atol=1e-12)
        assert torch.equal(padded[name][1, 4:], torch.zeros_like(padded[name][1, 4:]))  # padded queries
        assert torch.equal(padded[name][0, 9:], torch.zeros_like(padded[name][0, 9:]))


def direct_encode(model, batch):
    """The encoder without its shortcuts: every token embedded and projected, one padded batch."""
    inputs = model.embed_inputs(batch["input_unit_index"], batch["input_token_type"])
    latents = model.latent_emb(model.latent_index).expand(len(inputs), -1, -1)
    return model.encoder(
        latents,
        model.encoder.attention.project_context(inputs),
        x_rotation=model.rotary(batch["latent_timestamps"]),
        context_rotation=model.rotary(batch["input_timestamps"]),
        context_mask=batch["input_mask"],
    )


@pytest.mark.parametrize("token_type_embedding", [False, True])
def test_encoder_shortcuts_equal_the_direct_encoder(gen, token_type_embedding):
    """Distinct (unit, type) rows projected once and windows grouped by length (more windows than
    ENCODER_GROUP, some equal in length) give the per-token, fully padded result."""
    model = make_model(token_type_embedding=token_type_embedding)
    assert ENCODER_GROUP < 11
    windows = [make_window(gen, units=list(range(1 + i % 6)), session=i % 3, rate=3 + i) for i in range(11)]
    windows.append(windows[0] | {"session": 2})  # same length as window 0
    batch = collate(model, windows, gen, extra_inputs=3)
    with torch.no_grad():
        latents = model.encode(
            batch["input_unit_index"],
            batch["input_timestamps"],
            batch["input_token_type"],
            batch["input_mask"],
            latent_rotation=model.rotary(batch["latent_timestamps"]),
        )
        torch.testing.assert_close(latents, direct_encode(model, batch), rtol=0, atol=1e-12)
        together = model(**batch)
        for i, window in enumerate(windows):
            alone = model(**collate(model, [window], gen))
            q = len(window["out_time"])
            for name, y in alone.items():
                torch.testing.assert_close(together[name][i, :q], y[0], rtol=0, atol=1e-12)


def test_an_all_true_mask_equals_no_mask(gen, model):
    windows = [make_window(gen, units=[0, 1, 2], session=0, rate=4)]
    batch = collate(model, windows, gen)
    assert batch["input_mask"].all()
    with torch.no_grad():
        assert_outputs_close(model(**(batch | {"input_mask": None})), model(**batch), atol=0)


def test_bfloat16_autocast_tracks_float32(gen):
    """The bf16 path (autocast matmuls, float32 rotation and attention on CPU) stays within bf16
    rounding of float32, forward and backward."""
    model = make_model(ffn_dropout=0.0, linear_dropout=0.0, attention_dropout=0.0).float().train()
    windows = [make_window(gen, units=list(range(8)), session=i % 3, rate=10) for i in range(4)]
    batch = {k: v.float() if v.is_floating_point() else v for k, v in collate(model, windows, gen).items()}
    runs = {}
    for bf16 in (False, True):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(**batch)
        sum(y.float().square().sum() for y in out.values()).backward()
        runs[bf16] = out, {n: p.grad.clone() for n, p in model.named_parameters()}
    (out32, grad32), (out16, grad16) = runs[False], runs[True]
    for name in out32:
        scale = out32[name].abs().max()
        assert (out16[name].float() - out32[name]).abs().max() < 0.05 * scale
    for name, g in grad32.items():
        assert (grad16[name] - g).norm() < 0.1 * g.norm() + 1e-6, name


def test_delimiters_of_a_silent_unit_change_the_output(gen, model):
    window = make_window(gen, units=[0, 1, 2], session=0, silent=(2,))
    assert (window["unit"] == 2).sum() == 2  # only its START and END tokens
    keep = window["unit"] != 2
    without = window | {key: window[key][keep] for key in ("unit", "time", "type")}
    with torch.no_grad():
        out = model(**collate(model, [window], gen))
        out_without = model(**collate(model, [without], gen))
    assert max_difference(out, out_without) > 1e-3


def test_token_embeddings_follow_the_paper(model):
    unit = torch.tensor([[4, 4, 4]])
    kind = torch.tensor([[SPIKE, START, END]])
    x = model.embed_inputs(unit, kind)[0]
    unit_row = model.unit_emb.weight[4]
    start_row, end_row = model.token_type_emb.weight
    assert torch.equal(x[0], unit_row)  # spike token = unit embedding
    assert torch.equal(x[1], unit_row + start_row) and torch.equal(x[2], unit_row + end_row)

    variant = make_model(token_type_embedding=True)
    x = variant.embed_inputs(unit, kind)[0]
    assert variant.token_type_emb.num_embeddings == 3
    assert torch.equal(x, variant.unit_emb.weight[4] + variant.token_type_emb.weight)


def test_value_rotation_flags_reach_the_layers(model):
    assert model.encoder.attention.rotate_value
    assert all(block.attention.rotate_value for block in model.processor)
    assert not model.decoder.attention.rotate_value


def test_vocabulary_growth_keeps_old_rows_and_outputs(gen, model):
    window = make_window(gen, units=[0, 5, 11], session=2)
    batch = collate(model, [window], gen)
    old_units = model.unit_emb.weight.detach().clone()
    old_sessions = model.session_emb.weight.detach().clone()
    with torch.no_grad():
        before = model(**batch)
    assert model.grow_units(5) == range(12, 17)
    assert model.grow_sessions(2) == range(3, 5)
    assert model.config.num_units == 17 and model.config.num_sessions == 5
    assert model.unit_emb.weight.shape == (17, 32) and model.unit_emb.weight.dtype == torch.float64
    assert model.unit_emb.weight.requires_grad
    assert torch.equal(model.unit_emb.weight[:12], old_units)
    assert torch.equal(model.session_emb.weight[:3], old_sessions)
    assert model.unit_emb.weight[12:].abs().sum() > 0
    with torch.no_grad():
        assert_outputs_close(model(**batch), before, atol=0)
        new = make_window(gen, units=[12, 16], session=4)
        assert model(**collate(model, [new], gen))["hand_vel"].isfinite().all()


def test_task_embedding_needs_the_decoder_index(gen, model):
    batch = collate(model, [make_window(gen, units=[1], session=0)], gen)
    del batch["output_decoder_index"]
    with pytest.raises(ValueError, match="output_decoder_index"):
        model(**batch)
    plain = make_model(task_embedding=False, token_type_embedding=True)
    assert set(plain(**batch)) == {"cursor_pos", "hand_vel"}


def test_dropout_is_active_only_in_training(gen, model):
    batch = collate(model, [make_window(gen, units=[1, 2], session=0)], gen)
    with torch.no_grad():
        assert_outputs_close(model(**batch), model(**batch), atol=0)
        model.train()
        assert max_difference(model(**batch), model(**batch)) > 0


def test_backward_reaches_every_parameter(gen, model):
    model.train()
    out = model(**collate(model, [make_window(gen, units=[0, 1], session=0)], gen))
    sum(y.square().sum() for y in out.values()).backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_gradients_do_not_depend_on_the_cpu_threads_timing(gen):
    """Training on CPU is reproducible with several threads: eight backward passes of one float32
    batch give bitwise equal gradients (indexing the delimiter rows by token type summed its
    gradient in an order set by the threads' timing, so seeded runs drifted apart)."""
    torch.manual_seed(0)
    model = POYO(tiny_config(num_units=600, dim=128, ffn_dropout=0.0, linear_dropout=0.0, attention_dropout=0.0)).train()
    # the encoder embeds each distinct (unit, token type) pair once: 1,800 rows of 3 types here
    windows = [make_window(gen, units=range(600), session=i % 3, rate=2) for i in range(4)]
    batch = {k: v.float() if v.is_floating_point() else v for k, v in collate(model, windows, gen).items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(8):
            model.zero_grad()
            sum(y.square().sum() for y in model(**batch).values()).backward()
            runs.append({name: p.grad.clone() for name, p in model.named_parameters()})
    finally:
        torch.set_num_threads(threads)
    differing = {name for run in runs[1:] for name in run if not torch.equal(run[name], runs[0][name])}
    assert differing == set()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 10),
    m=st.integers(1, 10),
    context=st.sampled_from([0.5, 1.0, 3.0]),
    timing=st.sampled_from(["uniform", "linspace", "bin_centers"]),
)
def test_latent_grid_counts_timestamps_and_distinct_embeddings(n, m, context, timing):
    index, times = latent_grid(
        num_latent_timestamps=n, latents_per_timestamp=m, context_length_s=context, timing=timing
    )
    assert isinstance(index, torch.Tensor) and isinstance(times, torch.Tensor)
    assert index.shape == times.shape == (n * m,)
    assert index.dtype == torch.int64 and times.dtype == torch.float32
    k = torch.arange(n, dtype=torch.float64)
    if timing == "bin_centers":
        grid = (k + 0.5) * context / n
    else:
        grid = k * context / (n - 1) if n > 1 else torch.zeros(1, dtype=torch.float64)
    # computed in float64, rounded once to float32
    torch.testing.assert_close(times.reshape(n, m), grid.to(torch.float32)[:, None].expand(n, m), rtol=0, atol=1e-7)
    assert torch.equal(times.reshape(n, m), times.reshape(n, m)[:, :1].expand(n, m))  # shared per group
    assert torch.equal(index.reshape(n, m), torch.arange(m).repeat(n, 1))  # e_0..e_{m-1} each
    assert torch.equal(index, torch.arange(n * m) % m)


def test_latent_grid_timings_and_errors():
    def grid(**kwargs):
        return latent_grid(latents_per_timestamp=2, context_length_s=1.0, **kwargs)[1]

    uniform = grid(num_latent_timestamps=5)
    assert torch.unique(uniform).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.equal(grid(num_latent_timestamps=5, timing="linspace"), uniform)
    assert torch.unique(grid(num_latent_timestamps=4, timing="bin_centers")).tolist() == [
        0.125, 0.375, 0.625, 0.875
    ]
    assert grid(num_latent_timestamps=1).tolist() == [0.0, 0.0]
    thirds = torch.unique(grid(num_latent_timestamps=4))  # 1/3 and 2/3: rounded once from float64
    assert torch.equal(thirds, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=torch.float64).float())
    with pytest.raises(ValueError, match="timing"):
        grid(num_latent_timestamps=4, timing="x")
    with pytest.raises(ValueError):
        grid(num_latent_timestamps=0)
    with pytest.raises(ValueError):
        latent_grid(num_latent_timestamps=2, latents_per_timestamp=0, context_length_s=1.0)


@pytest.mark.parametrize("timing", ["linspace", "bin_centers"])
@pytest.mark.parametrize("context", [1.0, 2.5])
def test_latent_buffers_follow_the_config(timing, context):
    config = tiny_config(latent_timing=timing, context_length_s=context, num_latent_timestamps=5)
    model = POYO(config)
    index, times = latent_grid(
        num_latent_timestamps=5, latents_per_timestamp=3, context_length_s=context, timing=timing
    )
    assert torch.equal(model.latent_index, index) and torch.equal(model.latent_timestamps, times)
    assert model.latent_index.shape == (config.num_latents,) == (15,)
    assert model.latent_index.dtype == torch.int64 and model.latent_timestamps.dtype == torch.float32
    assert float(model.latent_timestamps.max()) <= context
    grid_index, grid_times = model.latent_grid()
    assert torch.equal(grid_index, model.latent_index) and torch.equal(grid_times, model.latent_timestamps)
    _, longer = model.latent_grid(2 * context)  # another window length: the same grid, stretched
    torch.testing.assert_close(longer, 2 * model.latent_timestamps, rtol=1e-6, atol=0)
    double = model.double()  # buffers follow the model: times to float64, the index stays int64
    assert double.latent_timestamps.dtype == torch.float64 and double.latent_index.dtype == torch.int64


def test_latent_buffers_are_not_in_the_state_dict(gen):
    model = make_model()
    state = model.state_dict()
    assert not any(key.startswith("latent_index") or key.startswith("latent_timestamps") for key in state)
    assert "latent_emb.weight" in state
    assert {name for name, _ in model.named_buffers()} >= {"latent_index", "latent_timestamps"}
    # a model with another latent timing or context loads the same weights strictly (model files
    # stay compatible) and keeps the grid of its own config
    other = POYO(tiny_config(latent_timing="bin_centers", context_length_s=2.0)).double().eval()
    other.load_state_dict(state, strict=True)
    assert torch.equal(other.latent_index, model.latent_index)
    torch.testing.assert_close(
        other.latent_timestamps, torch.tensor([0.25, 0.75, 1.25, 1.75], dtype=torch.float64).repeat_interleave(3)
    )
    window = make_window(gen, units=[0, 4], session=1)
    batch = collate(model, [window], gen)
    with torch.no_grad():
        assert_outputs_close(other(**batch), model(**batch), atol=0)  # same weights, same explicit times


@pytest.mark.parametrize("ffn", ["gelu", "geglu"])
def test_flops_match_a_measured_count(gen, ffn):
    """Silent units only: every token is a distinct (unit, type) pair, so the key/value projection
    runs once per token, as the nominal count assumes."""
    model = make_model(ffn=ffn)
    window = make_window(gen, units=[0, 1, 2, 3], session=0, num_outputs=7, silent=(0, 1, 2, 3))
    batch = collate(model, [window], gen)
    m, p = batch["input_unit_index"].shape[1], batch["output_timestamps"].shape[1]
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(**batch)
    assert forward_flops(model.config, num_input_tokens=m, num_outputs=p) == counter.get_total_flops()
    steps = train_step_flops(model.config, num_input_tokens=m, num_outputs=p, batch_size=16)
    assert steps == 3 * 16 * counter.get_total_flops()
    assert not hasattr(model, "flops_per_step")  # FLOPs live in neuropoyo.model.info


def test_parameter_groups_add_up():
    config = tiny_config()
    model = POYO(config)
    info = model_info(config, window_tokens=100, num_outputs=10, batch_size=4)
    assert info["total_params"] == model.parameter_count() == sum(model.parameter_groups().values())
    assert info["unit_embedding_params"] == 12 * 32 and info["readout_params"] == 32 * 5 + 5
    assert info["train_flops_per_step"] == 3 * 4 * info["forward_flops_per_window"]


def test_preset_parameter_counts(capsys):
    """Prints each preset's size; POYO-mp sizes land within 2% of the paper's 3.8M / 7.4M / 13M."""
    lines = []
    for path in sorted(PRESET_DIR.glob("*/*.yaml")):  # model presets and run files alike
        config = RunConfig.from_yaml(path).model if path.parent.name == "runs" else _model_preset(path.stem)
        info = model_info(config, window_tokens=4000, num_outputs=100, batch_size=128)
        paper = PAPER_PARAMS.get(path.stem)
        lines.append(
            f"{path.parent.name + '/' + path.stem:28s} L={config.depth + 2:2d} params={info['total_params']:>11,} "
            f"(units {info['unit_embedding_params']:,}, transformer {info['transformer_params']:,})"
            + (f" paper {paper / 1e6:.1f}M" if paper else "")
        )
        if paper:
            assert abs(info["total_params"] / paper - 1) < 0.02
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert {"paper-single-session", "cpu-small", *PAPER_PARAMS} <= {p.stem for p in PRESET_DIR.glob("models/*.yaml")}


def _model_preset(name: str) -> POYOConfig:
    return RunConfig.from_dict({"model": name}).model


def test_single_session_preset_is_table_4():
    config = _model_preset("paper-single-session")
    sizes = (config.dim, config.head_dim, config.num_latents, config.depth, config.num_heads)
    assert sizes == (128, 64, 128, 6, 8)
    assert config.ffn_dropout == config.linear_dropout == config.attention_dropout == 0.3
    assert (config.t_min, config.t_max, config.rotate_fraction) == (0.001, 4.0, 0.5)
    mp = _model_preset("paper-mp-L26")
    assert (mp.num_latents, mp.dim, mp.depth, mp.num_units, mp.num_sessions) == (512, 128, 24, 9789, 100)


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dim: 64\nnum_layers: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*unknown model config key 'num_layers'"):
        POYOConfig.from_yaml(path)
    with pytest.raises(ValueError, match="unknown model config key 'depht'"):
        POYOConfig.from_dict({"depht": 2})


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"t_min": "1e-3"}, "t_min must be float"),
        ({"depth": 2.5}, "depth must be int"),
        ({"ffn": "relu"}, "ffn must be one of"),
        ({"rotate_fraction": 0.3}, "rotate_fraction"),
        ({"readouts": {}}, "readouts"),
        ({"t_min": 5.0}, "t_min < t_max"),
        ({"attention_dropout": 1.0}, "attention_dropout"),
    ],
)
def test_config_rejects_bad_values(tmp_path, bad, message):
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad))  # JSON is YAML
    with pytest.raises(ValueError, match=message) as error:
        POYOConfig.from_yaml(path)
    assert "bad.yaml" in str(error.value)


def test_config_round_trips_through_json():
    config = tiny_config(latent_timing="bin_centers", qkv_bias=True)
    restored = POYOConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert config.readout_names == ("cursor_pos", "hand_vel")  # sorted: output_decoder_index order
    assert POYOConfig.from_dict({"t_max": 4}).t_max == 4.0
    assert dataclasses.replace(config, depth=3).depth == 3


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("input_unit_index", 12, r"input_unit_index holds 0\.\.12 but the model has 12 units"),
        ("input_unit_index", -1, r"input_unit_index holds -1\.\.\d+ but the model has 12 units"),
        ("input_token_type", 3, r"input_token_type holds 0\.\.3 .* 3 token types"),
        ("output_session_index", 3, r"output_session_index holds \d\.\.3 but the model has 3 sessions"),
        ("output_decoder_index", 2, r"output_decoder_index holds \d\.\.2 but the model has 2 readouts"),
        ("input_timestamps", float("nan"), r"input_timestamps holds NaN/inf"),
        ("output_timestamps", float("inf"), r"output_timestamps holds NaN/inf"),
    ],
)
def test_a_bad_batch_is_named_before_any_kernel_runs(gen, model, field, value, message):
    """Out-of-range indices (a device-side assert on CUDA) and non-finite times: a ValueError that
    names the field, and the same batch without the bad entry decodes."""
    batch = collate(model, [make_window(gen, units=[0, 1, 2], session=0, rate=4)], gen)
    bad = batch[field].clone()
    bad.view(-1)[1] = value
    with torch.no_grad():
        model(**batch)
        with pytest.raises(ValueError, match=message):
            model(**(batch | {field: bad}))


def test_mismatched_input_shapes_are_named(gen, model):
    batch = collate(model, [make_window(gen, units=[0, 1], session=0)], gen)
    with pytest.raises(ValueError, match=r"must have one shape \(B, M\)"):
        model(**(batch | {"input_timestamps": batch["input_timestamps"][:, :-1]}))
    with pytest.raises(ValueError, match=r"must have one shape \(B, P\)"):
        model(**(batch | {"output_timestamps": batch["output_timestamps"][:, :-1]}))
