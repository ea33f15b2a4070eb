"""Export a trained model as ONNX graphs and a JSON manifest, for hosts without Python.

``export_onnx`` writes a folder (atomically)::

    offline.onnx    one tokenized window -> every readout at its queries      (graphs.OfflineWindow)
    spike_kv.onnx   spikes -> their rotated encoder keys and values           (graphs.SpikeKeys)
    update.onnx     a window's cached keys/values + its end time -> estimate  (graphs.StreamUpdate)
    manifest.json   vocabularies, normalisation, context length, every graph's inputs and outputs
                    (names, dtypes, shapes), the largest difference from PyTorch on a test window

The streaming pair is the :class:`~neuropoyo.streaming.StreamingDecoder` split at its cache: the host
keeps the spikes' keys and values in its own buffer and passes those of the current window.
Graphs are float32 with float64 times (angles computed in float64); outputs are z-scored.
Traced by ``torch.onnx.export(dynamo=True)``: the TorchScript exporter cannot trace the rotary
attention (``view_as_complex``); under ``torch.export`` the model takes its real-arithmetic path.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from neuropoyo import __version__
from neuropoyo.errors import ConfigError
from neuropoyo.io import write_dir_atomic
from neuropoyo.model.poyo import POYO, with_parameters_in
from neuropoyo.schema import END, SPIKE, START
from neuropoyo.streaming.graphs import OfflineWindow, SpikeKeys, StreamUpdate
from neuropoyo.trained import TrainedModel

if TYPE_CHECKING:
    import onnx

EXPORT_FORMATS = ("onnx",)
OPSET = 20  # the first with a Gelu operator
MANIFEST = "manifest.json"
FORMAT = "neuropoyo.onnx-export"
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def missing_packages(packages: tuple[str, ...]) -> list[str]:
    """Those of ``packages`` that are not installed."""
    return [name for name in packages if importlib.util.find_spec(name) is None]


def require_onnx() -> None:
    """ConfigError naming the extra to install when a package the export needs is missing."""
    missing = missing_packages(ONNX_PACKAGES)
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}: pip install 'neuropoyo[export]'")


def onnx_model(
    module: nn.Module,
    inputs: Mapping[str, Tensor],
    outputs: list[str],
    dynamic: Mapping[str, str] | None = None,
) -> onnx.ModelProto:
    """``module`` traced on ``inputs`` (its forward's arguments by name, in order) as an ONNX model.

    dynamic: input name -> the name of its first dimension's size, which then varies (inputs that
    name one size share it); other sizes are fixed to the example's.
    """
    dynamic = dynamic or {}
    sizes = {name: torch.export.Dim(name, min=0) for name in set(dynamic.values())}
    shapes = {name: {0: sizes[dynamic[name]]} if name in dynamic else None for name in inputs}
    with _quiet():
        program = torch.onnx.export(
            module.eval(),
            (),
            kwargs=dict(inputs),
            input_names=list(inputs),
            output_names=outputs,
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    return program.model_proto


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress: its warnings and its loggers' notes (e.g. that torchvision
    ops are not registered, or which constants the optimizer leaves unfolded)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _examples(model: POYO, readout: str, *, spikes: int, units: int, seed: int) -> dict[str, dict[str, Tensor]]:
    """Inputs of each graph for a random window of ``spikes`` spikes of ``units`` units at ~100 s."""
    c, generator = model.config, torch.Generator().manual_seed(seed)
    rows = torch.randint(0, c.num_units, (units,), generator=generator)
    spike_rows = rows[torch.randint(0, units, (spikes,), generator=generator)]
    offsets = torch.rand(spikes, generator=generator, dtype=torch.float64).sort().values * c.context_length_s
    now = torch.tensor([100.0 + c.context_length_s], dtype=torch.float64)
    edges = torch.tensor([0.0, c.context_length_s], dtype=torch.float64).repeat_interleave(units)
    with torch.no_grad():
        keys, values = SpikeKeys(model)(spike_rows, now - c.context_length_s + offsets)
    decoder = model.readout_names.index(readout)
    return {
        "offline": {
            "input_unit_index": torch.cat((spike_rows, rows, rows)),
            "input_timestamps": torch.cat((offsets, edges)),
            "input_token_type": torch.tensor([SPIKE] * spikes + [START] * units + [END] * units),
            "output_session_index": torch.tensor([0, c.num_sessions - 1]),
            "output_timestamps": torch.tensor([0.5, 1.0], dtype=torch.float64) * c.context_length_s,
            "output_decoder_index": torch.tensor([decoder, decoder]),
        },
        "spike_kv": {"unit_index": spike_rows, "time_s": now - c.context_length_s + offsets},
        "update": {
            "spike_keys": keys,
            "spike_values": values,
            "unit_index": rows,
            "session_index": torch.tensor([c.num_sessions - 1]),
            "now_s": now,
        },
    }


def _signature(values) -> list[dict]:
    """name, dtype and shape (sizes or dimension names) of ONNX graph inputs or outputs."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return [
        {
            "name": value.name,
            "dtype": tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name,
            "shape": [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim],
        }
        for value in values
    ]


def _difference(file: Path, module: nn.Module, inputs: Mapping[str, Tensor]) -> float:
    """Largest |ONNX Runtime - PyTorch| over the outputs of ``module`` on ``inputs``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    got = session.run(None, {name: value.numpy() for name, value in inputs.items()})
    with torch.no_grad():
        want = module(**inputs)
    want = want if isinstance(want, tuple) else (want,)
    return max(float(np.abs(g - w.numpy()).max(initial=0.0)) for g, w in zip(got, want))


def export_onnx(trained: TrainedModel, out_dir: str | Path, *, readout: str | None = None) -> Path:
    """Write ``trained`` as ONNX graphs and ``manifest.json`` to the folder ``out_dir``.

    readout: the behavior stream the streaming update estimates (default: the model's only
    readout); the offline graph returns every readout. The model is exported in float32 (from a
    copy on the CPU). Returns the folder.
    """
    require_onnx()
    import onnx

    if trained.model.value_emb is not None or trained.model.config.classes:
        raise ConfigError(
            "export: the ONNX graphs take spike tokens and continuous readouts; this model reads value "
            "tokens (calcium traces, binned counts) or has classification readouts, which are not exported"
        )
    model = with_parameters_in(copy.deepcopy(trained.model).cpu().eval(), torch.float32)
    names = model.readout_names
    if readout is None and len(names) != 1:
        raise ConfigError(f"the model has readouts {list(names)}: name the one to stream with --readout")
    readout = readout or names[0]
    if readout not in names:
        raise ConfigError(f"readout {readout!r} is not one of the model's readouts {list(names)}")
    graphs = {
        "offline": (OfflineWindow(model), list(names), {"input_unit_index": "tokens", "input_timestamps": "tokens",
                    "input_token_type": "tokens", "output_session_index": "queries", "output_timestamps": "queries",
                    "output_decoder_index": "queries"}),
        "spike_kv": (SpikeKeys(model), ["keys", "values"], {"unit_index": "spikes", "time_s": "spikes"}),
        "update": (StreamUpdate(model, readout), ["estimate"], {"spike_keys": "spikes", "spike_values": "spikes",
                   "unit_index": "units"}),
    }
    traced = _examples(model, readout, spikes=5, units=3, seed=0)
    checked = _examples(model, readout, spikes=11, units=4, seed=1)  # other sizes than the trace's

    def write(folder: Path) -> None:
        specs, differences = {}, {}
        for name, (module, outputs, dynamic) in graphs.items():
            proto = onnx_model(module, traced[name], outputs, dynamic)
            onnx.save(proto, folder / f"{name}.onnx")
            specs[name] = {
                "file": f"{name}.onnx",
                "inputs": _signature(proto.graph.input),
                "outputs": _signature(proto.graph.output),
            }
            differences[name] = _difference(folder / f"{name}.onnx", module, checked[name])
        manifest = {
            "format": FORMAT,
            "format_version": 1,
            "neuropoyo_version": __version__,
            "torch_version": torch.__version__,
            "opset": OPSET,
            "context_length_s": model.config.context_length_s,
            "units": trained.unit_vocab.to_list(),
            "sessions": trained.session_vocab.to_list(),
            "readouts": dict(model.config.readouts),
            "readout": readout,
            "token_types": {"spike": SPIKE, "start": START, "end": END},
            "normalization": trained.normalizer.to_dict(),
            "graphs": specs,
            "max_abs_difference": differences,
            "model": model.config.to_dict(),
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))

    return write_dir_atomic(out_dir, write)
