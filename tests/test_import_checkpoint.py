"""`neuropoyo import-checkpoint`: torch_brain POYO checkpoints become model directories that compute
the same function; malformed or untrusted files are refused with errors naming file and field."""

import copy
import json
import math
from collections import OrderedDict, UserDict

import pytest
import torch

from neuropoyo.trained import load_model
from neuropoyo.cli import main
from neuropoyo.errors import CheckpointError
from neuropoyo.interop import torch_brain_checkpoint as tbc
from neuropoyo.interop import import_checkpoint
from neuropoyo.model.rotary import rotary_periods

TORCH_BRAIN = "torch_brain is an optional test dependency (pip install -e '.[interop-test]')"
UNITS = ["lab/s0/u0", "lab/s0/u1", "lab/s0/u2", "lab/s1/u0", "lab/s1/u1"]
SESSIONS = ["lab/s0", "lab/s1"]
# a small torch_brain POYO: 8 latent steps of 0.125 s, 4 latents each
HPARAMS = dict(
    sequence_length=1.0,
    latent_step=0.125,
    num_latents_per_step=4,
    dim=64,
    depth=2,
    dim_head=32,
    cross_heads=2,
    self_heads=2,
)


def lightning_checkpoint(hparams: dict, state_dict: dict) -> dict:
    """The dict a Lightning trainer saves for a module holding the POYO as ``self.model``."""
    return {
        "epoch": 3,
        "hyper_parameters": {"model": dict(hparams, _target_="torch_brain.models.POYO")},
        "state_dict": {f"model.{key}": value for key, value in state_dict.items()},
    }


def vocab(words: list[str]) -> OrderedDict:
    return OrderedDict([("NA", 0)] + [(w, i + 1) for i, w in enumerate(words)])


def handmade_state(
    *, dim=8, dim_head=8, cross_heads=1, self_heads=2, depth=1, latents=2, dim_out=3, seed=0
) -> dict:
    """A torch_brain POYO state dict written out by name (no torch_brain needed), random values."""
    g = torch.Generator().manual_seed(seed)
    state = {}

    def add(name, *shape):
        state[name] = torch.randn(*shape, generator=g)

    def feedforward(prefix):  # Sequential(LayerNorm, FeedForward(net=(Linear, GEGLU, Dropout, Linear)))
        add(f"{prefix}.0.weight", dim), add(f"{prefix}.0.bias", dim)
        add(f"{prefix}.1.net.0.weight", 8 * dim, dim), add(f"{prefix}.1.net.0.bias", 8 * dim)
        add(f"{prefix}.1.net.3.weight", dim, 4 * dim), add(f"{prefix}.1.net.3.bias", dim)

    add("unit_emb.weight", len(UNITS) + 1, dim)
    state["unit_emb.vocab"] = vocab(UNITS)
    add("session_emb.weight", len(SESSIONS) + 1, dim)
    state["session_emb.vocab"] = vocab(SESSIONS)
    add("token_type_emb.weight", 4, dim)
    add("latent_emb.weight", latents, dim)
    periods = rotary_periods(rotate_dim=dim_head // 2, t_min=1e-4, t_max=2.0627, spacing="inclusive")
    omega = torch.zeros(dim_head // 2)
    omega[: len(periods)] = torch.tensor([2 * math.pi / p for p in periods])
    state["rotary_emb.omega"] = omega
    for prefix in ("enc_atn", "dec_atn"):
        inner = cross_heads * dim_head
        add(f"{prefix}.norm.weight", dim), add(f"{prefix}.norm.bias", dim)
        add(f"{prefix}.norm_context.weight", dim), add(f"{prefix}.norm_context.bias", dim)
        add(f"{prefix}.to_q.weight", inner, dim), add(f"{prefix}.to_kv.weight", 2 * inner, dim)
        add(f"{prefix}.to_out.weight", dim, inner), add(f"{prefix}.to_out.bias", dim)
    feedforward("enc_ffn")
    for i in range(depth):
        inner = self_heads * dim_head
        add(f"proc_layers.{i}.0.norm.weight", dim), add(f"proc_layers.{i}.0.norm.bias", dim)
        add(f"proc_layers.{i}.0.to_qkv.weight", 3 * inner, dim)
        add(f"proc_layers.{i}.0.to_out.weight", dim, inner), add(f"proc_layers.{i}.0.to_out.bias", dim)
        feedforward(f"proc_layers.{i}.1")
    feedforward("dec_ffn")
    add("readout.weight", dim_out, dim), add("readout.bias", dim_out)
    return state


HANDMADE_HPARAMS = dict(
    sequence_length=0.5, latent_step=0.25, num_latents_per_step=2, dim=8, depth=1, dim_head=8,
    cross_heads=1, self_heads=2, ffn_dropout=0.1, lin_dropout=0.3, atn_dropout=0.05,
)


@pytest.fixture
def handmade_ckpt(tmp_path):
    state = handmade_state()
    path = tmp_path / "handmade.ckpt"
    torch.save(lightning_checkpoint(HANDMADE_HPARAMS, state), path)
    return path, state


# --- conversion without torch_brain ------------------------------------------------------------


def test_handmade_checkpoint_maps_every_weight_by_name(handmade_ckpt, tmp_path, monkeypatch):
    path, theirs = handmade_ckpt
    monkeypatch.setattr(tbc, "_unpickle", lambda p: pytest.fail("plain dicts load with weights_only"))
    out = import_checkpoint(path, tmp_path / "model", trust_pickle=True, readout="hand_vel")
    trained = load_model(out)
    ours = trained.model.state_dict()
    expected = {
        "unit_emb.weight": theirs["unit_emb.weight"][1:],  # row 0 is torch_brain's "NA" padding
        "session_emb.weight": theirs["session_emb.weight"][1:],
        "token_type_emb.weight": theirs["token_type_emb.weight"][:3],  # row 3 is never indexed
        "latent_emb.weight": theirs["latent_emb.weight"],
        "readouts.hand_vel.weight": theirs["readout.weight"],
        "readouts.hand_vel.bias": theirs["readout.bias"],
    }
    for block, source in (("encoder", "enc"), ("decoder", "dec")):
        for name in ("norm.weight", "norm.bias", "norm_context.bias", "to_q.weight", "to_kv.weight"):
            expected[f"{block}.attention.{name}"] = theirs[f"{source}_atn.{name}"]
        expected[f"{block}.attention.to_out.bias"] = theirs[f"{source}_atn.to_out.bias"]
        expected[f"{block}.feedforward.net.0.weight"] = theirs[f"{source}_ffn.0.weight"]
        expected[f"{block}.feedforward.net.1.bias"] = theirs[f"{source}_ffn.1.net.0.bias"]
        expected[f"{block}.feedforward.net.4.weight"] = theirs[f"{source}_ffn.1.net.3.weight"]
    expected["processor.0.attention.to_qkv.weight"] = theirs["proc_layers.0.0.to_qkv.weight"]
    expected["processor.0.attention.to_out.weight"] = theirs["proc_layers.0.0.to_out.weight"]
    expected["processor.0.feedforward.net.0.bias"] = theirs["proc_layers.0.1.0.bias"]
    expected["processor.0.feedforward.net.1.weight"] = theirs["proc_layers.0.1.1.net.0.weight"]
    expected["processor.0.feedforward.net.4.bias"] = theirs["proc_layers.0.1.1.net.3.bias"]
    for name, value in expected.items():
        assert torch.equal(ours[name], value), name
    # the rest are copied unchanged too: every neuropoyo tensor is one of theirs
    pool = [v for v in theirs.values() if isinstance(v, torch.Tensor)]
    for name, value in ours.items():
        assert name in expected or any(v.shape == value.shape and torch.equal(v, value) for v in pool), name

    assert trained.unit_vocab.to_list() == UNITS and trained.session_vocab.to_list() == SESSIONS
    c = trained.model.config
    assert (c.dim, c.head_dim, c.num_heads, c.cross_heads, c.depth) == (8, 8, 2, 1, 1)
    assert (c.num_units, c.num_sessions, c.readouts) == (5, 2, {"hand_vel": 3})
    assert (c.num_latent_timestamps, c.latents_per_timestamp, c.context_length_s) == (2, 2, 0.5)
    assert (c.ffn, c.ffn_mult, c.qkv_bias, c.token_type_embedding, c.task_embedding) == (
        "geglu", 4, False, True, False
    )
    assert (c.latent_timing, c.rotary_spacing, c.t_min, c.t_max) == ("bin_centers", "inclusive", 1e-4, 2.0627)
    assert (c.rotate_value_encoder, c.rotate_value_self, c.rotate_value_decoder) == (True, True, False)
    assert (c.ffn_dropout, c.linear_dropout, c.attention_dropout) == (0.1, 0.3, 0.05)
    assert c.rotary_periods_s == [2 * math.pi / w for w in theirs["rotary_emb.omega"][:2].tolist()]
    scale = trained.normalizer.scale("lab", "hand_vel")
    assert scale.mean == (0.0,) * 3 and scale.std == (1.0,) * 3


def test_vocabulary_rows_follow_the_vocab_indices_not_the_dict_order(tmp_path):
    state = handmade_state()
    state["unit_emb.vocab"] = OrderedDict(reversed(list(vocab(UNITS).items())))  # same rows, other order
    path = tmp_path / "reordered.ckpt"
    torch.save(lightning_checkpoint(HANDMADE_HPARAMS, state), path)
    trained = load_model(import_checkpoint(path, tmp_path / "model", trust_pickle=True))
    assert trained.unit_vocab.to_list() == UNITS
    assert torch.equal(trained.model.unit_emb.weight.detach(), state["unit_emb.weight"][1:])


def test_pickled_objects_need_the_full_unpickler(tmp_path, monkeypatch):
    """Lightning stores hyper-parameters as a dict subclass that weights_only refuses."""
    checkpoint = lightning_checkpoint(HANDMADE_HPARAMS, handmade_state())
    checkpoint["hyper_parameters"] = UserDict({"model": UserDict(checkpoint["hyper_parameters"]["model"])})
    path = tmp_path / "objects.ckpt"
    torch.save(checkpoint, path)
    calls = []
    full = tbc._unpickle
    monkeypatch.setattr(tbc, "_unpickle", lambda p: calls.append(p) or full(p))
    out = import_checkpoint(path, tmp_path / "model", trust_pickle=True)
    assert calls == [path] and load_model(out).model.config.dim == 8


def test_weights_only_checkpoint_imports_without_trust_pickle(handmade_ckpt, tmp_path, monkeypatch):
    path, theirs = handmade_ckpt
    monkeypatch.setattr(tbc, "_unpickle", lambda p: pytest.fail("plain dicts load with weights_only"))
    out = tmp_path / "model"
    assert main(["import-checkpoint", str(path), "--out", str(out)]) == 0
    assert torch.equal(load_model(out).model.latent_emb.weight.detach(), theirs["latent_emb.weight"])


TRIPPED = []


def _tripwire():
    TRIPPED.append("unpickled")
    return "a callback's state"


class Tripwire:
    """An arbitrary Python object: unpickling it calls :func:`_tripwire`."""

    def __reduce__(self):
        return _tripwire, ()


@pytest.fixture
def object_ckpt(tmp_path):
    checkpoint = lightning_checkpoint(HANDMADE_HPARAMS, handmade_state())
    checkpoint["callbacks"] = {"ModelCheckpoint": Tripwire()}
    path = tmp_path / "objects.ckpt"
    torch.save(checkpoint, path)
    TRIPPED.clear()
    return path


def test_full_unpickling_is_refused_without_trust_pickle(object_ckpt, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["import-checkpoint", str(object_ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{object_ckpt}: refusing to read it without --trust-pickle" in err
    reason = "Unsupported global: GLOBAL test_import_checkpoint._tripwire was not an allowed global"
    assert f"weights_only=True) cannot read it ({reason} by default)" in err
    assert "execute arbitrary code" in err
    assert TRIPPED == [] and not out.exists()


def test_trust_pickle_unpickles_fully(object_ckpt, tmp_path):
    out = import_checkpoint(object_ckpt, tmp_path / "model", trust_pickle=True)
    assert TRIPPED == ["unpickled"] and load_model(out).model.config.dim == 8


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    assert main(["import-checkpoint", str(missing), "--out", str(tmp_path / "m"), "--trust-pickle"]) == 2
    assert f"{missing}: no such checkpoint file" in capsys.readouterr().err


def _without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


MALFORMED = {
    "not a dict": (lambda ckpt: [ckpt], "expected a Lightning checkpoint dict"),
    "no hyper_parameters": (lambda ckpt: _without(ckpt, "hyper_parameters"), r"\['hyper_parameters'\]"),
    "no model hparams": (lambda ckpt: {**ckpt, "hyper_parameters": {}}, r"hyper_parameters\['model'\]"),
    "no state_dict": (lambda ckpt: _without(ckpt, "state_dict"), r"\['state_dict'\] should be a dict"),
    "foreign entries": (
        lambda ckpt: {**ckpt, "state_dict": {**ckpt["state_dict"], "loss.weight": torch.ones(1)}},
        r"outside the model .*'loss.weight'",
    ),
    "missing weight": (
        lambda ckpt: {**ckpt, "state_dict": _without(ckpt["state_dict"], "model.dec_ffn.1.net.3.bias")},
        r"unexpected keys none, missing keys \['dec_ffn.1.net.3.bias'\]",
    ),
    "extra weight": (
        lambda ckpt: {
            **ckpt, "state_dict": {**ckpt["state_dict"], "model.proc_layers.1.0.norm.weight": torch.ones(8)}
        },
        r"unexpected keys \['proc_layers.1.0.norm.weight'\], missing keys none",
    ),
}


def _with_hparams(**changes):
    def edit(ckpt):
        model = {k: v for k, v in {**ckpt["hyper_parameters"]["model"], **changes}.items() if v is not None}
        return {**ckpt, "hyper_parameters": {"model": model}}

    return edit


def _with_state(key, value):
    return lambda ckpt: {**ckpt, "state_dict": {**ckpt["state_dict"], f"model.{key}": value}}


MALFORMED |= {
    "wrong depth": (_with_hparams(depth=2), r"depth 2: unexpected keys none, missing keys \['proc_layers.1"),
    "wrong width": (_with_hparams(dim=16), r"has shape \(\d+, 8\) but the config .* gives \(\d+, 16\)"),
    "unknown argument": (_with_hparams(use_fancy=True), r"unknown POYO argument\(s\) \['use_fancy'\]"),
    "missing argument": (_with_hparams(latent_step=None), r"missing required argument\(s\) \['latent_"),
    "ragged latent grid": (_with_hparams(latent_step=0.3), "not a whole number of latent_step=0.3"),
    "other model class": (_with_hparams(_target_="torch_brain.models.POYOPlus"), "POYOPlus"),
    "wrong rotary range": (_with_hparams(t_max=4.0), "rotary_emb.omega does not match"),
    "dim_out disagrees": (_with_hparams(dim_out=5), "dim_out=5 but readout.weight has 3 rows"),
    "no padding word": (_with_state("unit_emb.vocab", OrderedDict(zip(UNITS, range(5)))), "'NA' at row 0"),
    "vocab too short": (_with_state("session_emb.vocab", vocab(SESSIONS[:1])), "rows should be 0..1"),
    "vocab not a dict": (_with_state("unit_emb.vocab", None), "should map words"),
    "weight not a tensor": (_with_state("latent_emb.weight", [1.0]), "'latent_emb.weight' should be a tens"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_checkpoints_name_file_and_field(case, tmp_path):
    edit, message = MALFORMED[case]
    path = tmp_path / "bad.ckpt"
    torch.save(edit(lightning_checkpoint(HANDMADE_HPARAMS, handmade_state())), path)
    out = tmp_path / "model"
    with pytest.raises(CheckpointError, match=message) as error:
        import_checkpoint(path, out, trust_pickle=True)
    assert str(path) in str(error.value)
    assert not out.exists()


def test_unreadable_file_is_a_cli_error(tmp_path, capsys):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"not a checkpoint at all")
    assert main(["import-checkpoint", str(path), "--out", str(tmp_path / "m"), "--trust-pickle"]) == 2
    assert f"{path}: not a readable torch checkpoint" in capsys.readouterr().err


# --- against torch_brain itself ----------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_brain_poyo():
    """A torch_brain POYO whose every parameter (norms and biases included) is randomly perturbed."""
    poyo = pytest.importorskip("torch_brain.models.poyo", reason=TORCH_BRAIN)
    torch.manual_seed(0)
    model = poyo.POYO(**HPARAMS, dim_out=2)
    model.unit_emb.initialize_vocab(UNITS)
    model.session_emb.initialize_vocab(SESSIONS)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return poyo, model.eval()


def test_handmade_state_matches_a_real_torch_brain_state(torch_brain_poyo):
    poyo, _ = torch_brain_poyo
    real = poyo.POYO(**HANDMADE_HPARAMS, dim_out=3, t_min=1e-4, t_max=2.0627)
    real.unit_emb.initialize_vocab(UNITS)
    real.session_emb.initialize_vocab(SESSIONS)
    mine = handmade_state()
    shapes = {k: getattr(v, "shape", None) for k, v in real.state_dict().items()}
    assert shapes == {k: getattr(v, "shape", None) for k, v in mine.items()}
    assert real.state_dict()["unit_emb.vocab"] == mine["unit_emb.vocab"]
    torch.testing.assert_close(real.rotary_emb.omega, mine["rotary_emb.omega"], rtol=1e-6, atol=0)


def test_inclusive_spacing_is_torch_brains():
    embeddings = pytest.importorskip("torch_brain.nn.position_embeddings", reason=TORCH_BRAIN)
    theirs = embeddings.generate_logspace_timeperiods(16, 1e-4, 2.0627).double()
    ours = rotary_periods(rotate_dim=32, t_min=1e-4, t_max=2.0627, spacing="inclusive")
    ours = torch.tensor(ours, dtype=torch.float64)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)  # theirs are computed in float32


def window_batch(gen, dtype):
    """Two windows of spikes with START / END tokens at 0 and 1 s, the second padded; torch_brain rows.

    Returns input unit rows (B, M) in torch_brain's numbering (row 0 = padding), times, types, mask,
    output times (B, P) and session rows (B,), all times in ``dtype``.
    """
    b, m, n_units = 2, 48, len(UNITS)
    unit = torch.randint(1, n_units + 1, (b, m), generator=gen)
    kind = torch.zeros(b, m, dtype=torch.long)
    time = torch.rand(b, m, generator=gen, dtype=torch.float64)
    rows = torch.arange(1, n_units + 1)
    unit[:, :n_units], kind[:, :n_units], time[:, :n_units] = rows, 1, 0.0  # START
    unit[:, n_units : 2 * n_units], kind[:, n_units : 2 * n_units] = rows, 2  # END
    time[:, n_units : 2 * n_units] = HPARAMS["sequence_length"]
    mask = torch.ones(b, m, dtype=torch.bool)
    mask[1, 35:] = False
    unit[~mask], kind[~mask], time[~mask] = 0, 0, 0.0  # padding: torch_brain's "NA" row
    output_time = torch.rand(b, 12, generator=gen, dtype=torch.float64)
    session = torch.tensor([1, 2])
    return unit, time.to(dtype), kind, mask, output_time.to(dtype), session


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_imported_checkpoint_computes_what_torch_brain_computes(torch_brain_poyo, tmp_path, capsys, dtype):
    """Same weights, same batch: the outputs agree to float rounding.

    Both models get the same timestamps: float32 like neuropoyo's tokenizer, and float64 (the import
    keeps torch_brain's own float32-computed rotary frequencies, so even float64 angles agree).
    """
    poyo, theirs = torch_brain_poyo
    path = tmp_path / "poyo.ckpt"
    torch.save(lightning_checkpoint(HPARAMS, theirs.state_dict()), path)
    out = tmp_path / "imported"
    assert main(["import-checkpoint", str(path), "--out", str(out), "--trust-pickle"]) == 0
    assert str(out) in capsys.readouterr().out
    trained = load_model(out)
    ours = trained.model.eval()
    assert trained.unit_vocab.to_list() == UNITS and trained.session_vocab.to_list() == SESSIONS
    assert json.loads((out / "config.json").read_text())["model"]["readouts"] == {"cursor_vel": 2}

    their_index, their_times = poyo.create_linspace_latent_tokens(0.0, 1.0, 0.125, 4)
    assert torch.equal(ours.latent_index, torch.from_numpy(their_index))
    assert torch.equal(ours.latent_timestamps, torch.from_numpy(their_times).float())  # the model's own grid

    unit, time, kind, mask, output_time, session = window_batch(torch.Generator().manual_seed(1), dtype)
    latent_index = torch.from_numpy(their_index).expand(2, -1)
    latent_times = torch.from_numpy(their_times).to(dtype).expand(2, -1)
    if dtype == torch.float64:
        theirs, ours = copy.deepcopy(theirs).double(), ours.double()
    with torch.no_grad():
        expected = theirs(
            input_unit_index=unit,
            input_timestamps=time,
            input_token_type=kind,
            input_mask=mask,
            latent_index=latent_index,
            latent_timestamps=latent_times,
            session_index=session,
            output_timestamps=output_time,
        )
        got = ours(
            input_unit_index=(unit - 1).clamp(min=0),  # our row = their row - 1; padding is masked
            input_timestamps=time,
            input_token_type=kind,
            input_mask=mask,
            output_session_index=(session - 1)[:, None].expand(-1, 12),
            output_timestamps=output_time,
            latent_timestamps=latent_times,
        )["cursor_vel"]
    assert expected.abs().max() > 0.1  # not trivially small
    torch.testing.assert_close(got, expected.to(got.dtype), rtol=0, atol=1e-5)
