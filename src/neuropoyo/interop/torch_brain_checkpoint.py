"""torch_brain POYO checkpoints -> neuropoyo model directories.

torch_brain trains its POYO with Lightning. The ``.ckpt`` file is a pickled dict holding
``hyper_parameters["model"]`` (the POYO keyword arguments, maybe with hydra's ``_target_``) and
``state_dict`` (parameter names prefixed ``model.``). The network is neuropoyo's POYO with these
config options: GEGLU feed-forward, the 3-type token embedding, bias-free q/k/v projections, latents
at bin centres, inclusive rotary periods, value rotation in the encoder and self-attention only,
dropout on the residuals of the self-attention blocks only. What the conversion changes:

- names: every parameter is renamed through :func:`key_map`; a name outside it is an error
- vocabularies: ``unit_emb.vocab`` / ``session_emb.vocab`` map word -> row with the padding word
  "NA" at row 0; neuropoyo tables have no padding row, so row 0 goes and the words, in row order,
  become the unit and session ids
- token types: their table has a 4th row that their tokenizer never indexes (it emits types 0 spike,
  1 start, 2 end only), so rows 0..2 are kept
- rotary frequencies: ``rotary_emb.omega`` must match t_min / t_max with inclusive spacing; its exact
  float32 values become the config's ``rotary_periods_s``
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from torch import Tensor

from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.errors import CheckpointError
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO
from neuropoyo.model.rotary import rotary_periods
from neuropoyo.schema import TOKEN_TYPES
from neuropoyo.tokens.vocab import Vocabulary
from neuropoyo.trained import TrainedModel, save_model
from neuropoyo.training.config import RunConfig

DEFAULT_READOUT = "cursor_vel"
PARAMETER_PREFIX = "model."  # the LightningModule holds the POYO as ``self.model``
PADDING_WORD = "NA"
OMEGA_RTOL = 1e-5  # their omega is computed in float32
REQUIRED_HPARAMS = ("sequence_length", "latent_step")
# torch_brain POYO's keyword defaults, for the keys a checkpoint's hyper_parameters leave out
HPARAM_DEFAULTS = {
    "num_latents_per_step": 64,
    "dim": 512,
    "depth": 2,
    "dim_head": 64,
    "cross_heads": 1,
    "self_heads": 8,
    "ffn_dropout": 0.2,
    "lin_dropout": 0.4,
    "atn_dropout": 0.0,
    "emb_init_scale": 0.02,
    "t_min": 1e-4,
    "t_max": 2.0627,
}
KNOWN_HPARAMS = (*REQUIRED_HPARAMS, *HPARAM_DEFAULTS, "dim_out")

CROSS_ATTENTION_KEYS = (
    "norm.weight",
    "norm.bias",
    "norm_context.weight",
    "norm_context.bias",
    "to_q.weight",
    "to_kv.weight",
    "to_out.weight",
    "to_out.bias",
)
SELF_ATTENTION_KEYS = ("norm.weight", "norm.bias", "to_qkv.weight", "to_out.weight", "to_out.bias")
# their feed-forward: Sequential(LayerNorm, FeedForward(net=Sequential(Linear, GEGLU, Dropout, Linear)));
# ours: FeedForward(net=Sequential(LayerNorm, Linear, GEGLU, Dropout, Linear))
FEEDFORWARD_MODULES = {"0.": "net.0.", "1.net.0.": "net.1.", "1.net.3.": "net.4."}
# converted by hand rather than renamed
VOCAB_TABLES = ("unit_emb", "session_emb")
SPECIAL_KEYS = (
    *(f"{table}.{part}" for table in VOCAB_TABLES for part in ("weight", "vocab")),
    "token_type_emb.weight",
    "rotary_emb.omega",
)

TRUST_MESSAGE = (
    "{path}: refusing to read it without --trust-pickle. PyTorch's safe loader (torch.load with "
    "weights_only=True) cannot read it ({reason}), so it needs full unpickling, and unpickling can "
    "execute arbitrary code; pass --trust-pickle (trust_pickle=True) only for files from a source "
    "you trust"
)


class LightningCheckpoint(NamedTuple):
    """The parts of a Lightning checkpoint the import reads."""

    hparams: dict[str, Any]  # hyper_parameters["model"]: the POYO keyword arguments
    state_dict: dict[str, Any]  # parameter name (``model.`` prefix removed) -> tensor or vocab


class ConvertedWeights(NamedTuple):
    """A neuropoyo state dict with its config (vocabulary sizes set) and vocabularies (ids in row order)."""

    config: POYOConfig
    state_dict: dict[str, Tensor]
    unit_ids: list[str]
    session_ids: list[str]


def read_lightning_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> LightningCheckpoint:
    """Read a Lightning checkpoint of a torch_brain POYO.

    Tries ``torch.load(weights_only=True)`` first, which runs no code; only when that refuses the
    file (e.g. for omegaconf or Lightning objects among the hyper-parameters) does it unpickle fully,
    and only with ``trust_pickle``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not trust_pickle:
            raise CheckpointError(TRUST_MESSAGE.format(path=path, reason=_refusal(error))) from None
        checkpoint = _unpickle(path)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f"{path}: expected a Lightning checkpoint dict with 'hyper_parameters' and 'state_dict', "
            f"got {type(checkpoint).__name__}"
        )
    hyper = _field(checkpoint, "hyper_parameters", path, "save them with self.save_hyperparameters()")
    hparams = _field(hyper, "model", path, "it holds the POYO keyword arguments", parent="hyper_parameters")
    state = _field(checkpoint, "state_dict", path, "is this a Lightning checkpoint?")
    foreign = sorted(key for key in state if not str(key).startswith(PARAMETER_PREFIX))
    if foreign:
        raise CheckpointError(
            f"{path}: state_dict holds {len(foreign)} entries outside the model "
            f"(no {PARAMETER_PREFIX!r} prefix), e.g. {foreign[:5]}; only a LightningModule whose "
            "sole module is `self.model = POYO(...)` can be imported"
        )
    stripped = {key[len(PARAMETER_PREFIX) :]: value for key, value in state.items()}
    return LightningCheckpoint(dict(hparams), stripped)


def _refusal(error: pickle.UnpicklingError) -> str:
    """The first sentence of what PyTorch's weights_only unpickler objected to."""
    text = str(error)
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    return (found.group(1) if found else text.strip().split("\n", 1)[0]).split(". ")[0].rstrip(".")


def _unpickle(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as error:
        raise CheckpointError(
            f"{path}: unpickling needs the module {error.name!r}, which is not installed; install it "
            "(e.g. omegaconf or lightning) and run the import again"
        ) from None
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from None


def _field(
    data: Mapping, key: str, path: Path, hint: str, *, parent: str = "the checkpoint"
) -> Mapping:
    value = data.get(key)
    if not isinstance(value, Mapping):
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise CheckpointError(f"{path}: {parent}[{key!r}] should be a dict but is {found}; {hint}")
    return value


def readout_dim(state_dict: Mapping[str, Any], *, source: str = "state_dict") -> int:
    """Output dimension of the single readout, from ``readout.weight`` (dim_out, dim)."""
    weight = state_dict.get("readout.weight")
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise CheckpointError(
            f"{source}: no 2-D tensor 'readout.weight' (the readout layer); is this a torch_brain POYO?"
        )
    return weight.shape[0]


def config_from_hparams(
    hparams: Mapping[str, Any], *, dim_out: int, readout: str, source: str = "hyper_parameters['model']"
) -> POYOConfig:
    """The POYOConfig of a torch_brain POYO built with keyword arguments ``hparams``.

    Vocabulary sizes are left at 1; :func:`convert_state_dict` sets them from the vocabularies.
    """
    hparams = dict(hparams)
    target = hparams.pop("_target_", None)
    if target is not None and str(target).rsplit(".", 1)[-1] != "POYO":
        raise CheckpointError(
            f"{source}: _target_ is {target!r}; only torch_brain's POYO (torch_brain.models.POYO) can be "
            "imported, other models (e.g. POYOPlus) have a different architecture"
        )
    unknown = sorted(set(hparams) - set(KNOWN_HPARAMS))
    missing = [key for key in REQUIRED_HPARAMS if key not in hparams]
    if unknown or missing:
        raise CheckpointError(
            f"{source}: "
            + (f"unknown POYO argument(s) {unknown}; " if unknown else "")
            + (f"missing required argument(s) {missing}; " if missing else "")
            + f"torch_brain POYO takes {', '.join(KNOWN_HPARAMS)}"
        )
    if hparams.get("dim_out", dim_out) != dim_out:
        raise CheckpointError(
            f"{source}: dim_out={hparams['dim_out']} but readout.weight has {dim_out} rows"
        )
    h = HPARAM_DEFAULTS | hparams
    return POYOConfig.from_dict(
        dict(
            readouts={readout: dim_out},
            dim=h["dim"],
            head_dim=h["dim_head"],
            num_heads=h["self_heads"],
            cross_heads=h["cross_heads"],
            depth=h["depth"],
            ffn="geglu",
            ffn_mult=4,
            qkv_bias=False,
            num_latent_timestamps=_latent_steps(h["sequence_length"], h["latent_step"], source),
            latents_per_timestamp=h["num_latents_per_step"],
            latent_timing="bin_centers",
            context_length_s=h["sequence_length"],
            t_min=h["t_min"],
            t_max=h["t_max"],
            rotary_spacing="inclusive",
            rotate_fraction=0.5,
            rotate_value_encoder=True,
            rotate_value_self=True,
            rotate_value_decoder=False,
            ffn_dropout=h["ffn_dropout"],
            linear_dropout=h["lin_dropout"],
            attention_dropout=h["atn_dropout"],
            token_type_embedding=True,
            task_embedding=False,
            init_std=h["emb_init_scale"],
        ),
        source=source,
    )


def _latent_steps(sequence_length: Any, latent_step: Any, source: str) -> int:
    """Number of latent timestamps: their grid has ceil(sequence_length / latent_step) of them."""
    if not all(isinstance(x, (int, float)) and x > 0 for x in (sequence_length, latent_step)):
        raise CheckpointError(
            f"{source}: sequence_length={sequence_length!r} and latent_step={latent_step!r} must be "
            "positive numbers"
        )
    ratio = sequence_length / latent_step
    steps = round(ratio)
    if steps < 1 or math.ceil(ratio) != steps or abs(ratio - steps) > 1e-9 * steps:
        raise CheckpointError(
            f"{source}: sequence_length={sequence_length} is not a whole number of "
            f"latent_step={latent_step} (ratio {ratio!r}); neuropoyo's latent grid needs an integer "
            "number of latent timestamps per window"
        )
    return steps


def key_map(depth: int, readout: str) -> dict[str, str]:
    """torch_brain POYO parameter name -> neuropoyo name, for every parameter copied unchanged."""
    pairs = {"latent_emb.weight": "latent_emb.weight"}
    for theirs, ours in (("enc", "encoder"), ("dec", "decoder")):
        pairs |= {f"{theirs}_atn.{k}": f"{ours}.attention.{k}" for k in CROSS_ATTENTION_KEYS}
        pairs |= _feedforward_keys(f"{theirs}_ffn.", f"{ours}.feedforward.")
    for i in range(depth):
        pairs |= {f"proc_layers.{i}.0.{k}": f"processor.{i}.attention.{k}" for k in SELF_ATTENTION_KEYS}
        pairs |= _feedforward_keys(f"proc_layers.{i}.1.", f"processor.{i}.feedforward.")
    pairs |= {f"readout.{k}": f"readouts.{readout}.{k}" for k in ("weight", "bias")}
    return pairs


def _feedforward_keys(theirs: str, ours: str) -> dict[str, str]:
    return {
        f"{theirs}{a}{param}": f"{ours}{b}{param}"
        for a, b in FEEDFORWARD_MODULES.items()
        for param in ("weight", "bias")
    }


def convert_state_dict(
    state_dict: Mapping[str, Any], config: POYOConfig, *, source: str = "state_dict"
) -> ConvertedWeights:
    """A torch_brain POYO state dict (``model.`` prefix removed) as neuropoyo weights for ``config``.

    ``config`` (from :func:`config_from_hparams`, one readout) fixes the names and shapes; every
    entry of ``state_dict`` must be used and every neuropoyo parameter filled, else CheckpointError.
    """
    if len(config.readouts) != 1:
        raise CheckpointError(f"{source}: a torch_brain POYO has one readout, config has {config.readouts}")
    renames = key_map(config.depth, config.readout_names[0])
    expected = set(renames) | set(SPECIAL_KEYS)
    unexpected = sorted(set(state_dict) - expected)
    missing = sorted(expected - set(state_dict))
    if unexpected or missing:
        raise CheckpointError(
            f"{source}: not the state of a torch_brain POYO of depth {config.depth}: "
            f"unexpected keys {unexpected or 'none'}, missing keys {missing or 'none'}; check that "
            "the checkpoint comes from torch_brain.models.POYO and its hyper_parameters match it"
        )
    unit_ids, unit_rows = _vocabulary(state_dict, "unit_emb", source)
    session_ids, session_rows = _vocabulary(state_dict, "session_emb", source)
    config = dataclasses.replace(
        config,
        num_units=len(unit_ids),
        num_sessions=len(session_ids),
        rotary_periods_s=_trained_periods(state_dict["rotary_emb.omega"], config, source),
    )
    weights = {ours: _tensor(state_dict, key, source) for key, ours in renames.items()}
    weights |= {
        "unit_emb.weight": unit_rows,
        "session_emb.weight": session_rows,
        "token_type_emb.weight": _tensor(state_dict, "token_type_emb.weight", source)[: len(TOKEN_TYPES)],
    }
    _check_shapes(weights, config, source)
    converted = {key: value.detach().to(torch.float32).contiguous() for key, value in weights.items()}
    return ConvertedWeights(config, converted, unit_ids, session_ids)


def _tensor(state_dict: Mapping[str, Any], key: str, source: str) -> Tensor:
    value = state_dict[key]
    if not isinstance(value, Tensor):
        raise CheckpointError(f"{source}: {key!r} should be a tensor, got {type(value).__name__}")
    return value


def _vocabulary(state_dict: Mapping[str, Any], table: str, source: str) -> tuple[list[str], Tensor]:
    """(words in row order without "NA", (len, dim) their embedding rows) of one vocabulary table."""
    vocab, weight = state_dict[f"{table}.vocab"], _tensor(state_dict, f"{table}.weight", source)
    where = f"{source}: {table}.vocab"
    if not isinstance(vocab, Mapping) or not all(
        isinstance(w, str) and type(r) is int for w, r in vocab.items()
    ):
        raise CheckpointError(f"{where} should map words (str) to rows (int), got {type(vocab).__name__}")
    if vocab.get(PADDING_WORD) != 0:
        raise CheckpointError(f"{where} should hold the padding word {PADDING_WORD!r} at row 0")
    if sorted(vocab.values()) != list(range(len(vocab))) or weight.ndim != 2 or len(weight) != len(vocab):
        raise CheckpointError(
            f"{where}: rows should be 0..{len(vocab) - 1}, one per row of {table}.weight "
            f"{tuple(weight.shape)}"
        )
    words = sorted((w for w in vocab if w != PADDING_WORD), key=vocab.__getitem__)
    if not words:
        raise CheckpointError(f"{where} holds no words besides {PADDING_WORD!r}")
    return words, weight[[vocab[w] for w in words]]


def _trained_periods(omega: Any, config: POYOConfig, source: str) -> list[float]:
    """The rotary periods 2 pi / omega a torch_brain POYO was trained with, after checking them.

    omega: (head_dim / 2,) frequencies, zero past the rotated pairs. torch_brain computes them in
    float32, up to ~1e-6 off the exact inclusive spacing: enough to turn a 0.1 ms period by ~0.04 rad
    at t = 1 s, so the exact values are kept rather than recomputed.
    """
    rotate_dim = int(config.head_dim * config.rotate_fraction)
    periods = rotary_periods(
        rotate_dim=rotate_dim, t_min=config.t_min, t_max=config.t_max, spacing=config.rotary_spacing
    )
    expected = torch.zeros(config.head_dim // 2, dtype=torch.float64)
    expected[: len(periods)] = torch.tensor([2 * math.pi / p for p in periods], dtype=torch.float64)
    if not (
        isinstance(omega, Tensor)
        and omega.shape == expected.shape
        and torch.allclose(omega.double(), expected, rtol=OMEGA_RTOL, atol=0.0)
    ):
        raise CheckpointError(
            f"{source}: rotary_emb.omega does not match dim_head={config.head_dim}, "
            f"t_min={config.t_min}, t_max={config.t_max} from the hyper_parameters; the checkpoint's "
            "hyper_parameters are not those of its weights"
        )
    return [2 * math.pi / w for w in omega[: len(periods)].tolist()]


def _check_shapes(weights: Mapping[str, Tensor], config: POYOConfig, source: str) -> None:
    with torch.device("meta"):  # shapes only
        reference = POYO(config).state_dict()
    unfilled = sorted(set(reference) - set(weights))
    if unfilled:
        raise CheckpointError(f"{source}: no torch_brain weights for neuropoyo parameters {unfilled}")
    for key, value in weights.items():
        if value.shape != reference[key].shape:
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(value.shape)} but the config from hyper_parameters "
                f"gives {tuple(reference[key].shape)}; the hyper_parameters do not match the weights"
            )


def identity_normalizer(session_ids: list[str], readout: str, dim: int) -> Normalizer:
    """Mean 0, std 1 for ``readout`` in every brainset (the part of a session id before its first '/')."""
    brainsets = sorted({sid.split("/", 1)[0] if "/" in sid else "" for sid in session_ids})
    scale = Scale(mean=(0.0,) * dim, std=(1.0,) * dim)
    return Normalizer({brainset: {readout: scale} for brainset in brainsets})


def import_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    *,
    trust_pickle: bool = False,
    readout: str = DEFAULT_READOUT,
) -> Path:
    """Convert the torch_brain POYO checkpoint ``path`` into a model directory ``out_dir`` (atomically).

    ``trust_pickle`` allows full unpickling when ``torch.load(weights_only=True)`` cannot read the
    file (see :func:`read_lightning_checkpoint`).

    The readout decodes the behavior stream named ``readout``. torch_brain checkpoints carry no
    behavior scale, so the model directory gets an identity normalizer: predictions come out in
    whatever units the model was trained on.
    """
    checkpoint = read_lightning_checkpoint(path, trust_pickle=trust_pickle)
    dim_out = readout_dim(checkpoint.state_dict, source=f"{path}: state_dict")
    config = config_from_hparams(
        checkpoint.hparams,
        dim_out=dim_out,
        readout=readout,
        source=f"{path}: hyper_parameters['model']",
    )
    weights = convert_state_dict(checkpoint.state_dict, config, source=f"{path}: state_dict")
    model = POYO(weights.config)
    model.load_state_dict(weights.state_dict)
    trained = TrainedModel(
        model=model.eval(),
        unit_vocab=Vocabulary(weights.unit_ids),
        session_vocab=Vocabulary(weights.session_ids),
        normalizer=identity_normalizer(weights.session_ids, readout, dim_out),
        settings=RunConfig(model=model.config).settings(),  # neuropoyo's defaults
    )
    return save_model(trained, out_dir)
