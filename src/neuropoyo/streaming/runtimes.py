"""Run a fixed-shape module through an inference runtime on the CPU: ONNX Runtime or OpenVINO.

The module is traced to ONNX in memory (:func:`neuropoyo.streaming.export.onnx_model`) and
loaded into the runtime with a set number of threads; the result is a function of the module's
inputs, as arrays or CPU tensors, returning its (first) output as a float32 array. The streaming
decoder runs its update (:class:`~neuropoyo.streaming.graphs.RecordingUpdate`) this way
(``backend=``); ``benchmarks/stream_runtimes.py`` times runtimes on the latent stack.
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from neuropoyo.streaming.export import missing_packages, onnx_model

BACKENDS = ("torch", "onnxruntime", "openvino")
RUNTIME_PACKAGES = {  # backend -> (the extra that installs it, the packages it needs)
    "onnxruntime": ("export", ("onnx", "onnxscript", "onnxruntime")),
    "openvino": ("openvino", ("onnx", "onnxscript", "openvino")),
}
OPENVINO_PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}  # its inference precision hint


def missing_runtime(backend: str) -> str | None:
    """What to install for ``backend`` (None when nothing is missing, as for torch)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    extra, packages = RUNTIME_PACKAGES.get(backend, ("", ()))
    missing = missing_packages(packages)
    return f"{', '.join(missing)} (pip install 'neuropoyo[{extra}]')" if missing else None


def runtime_function(
    module: nn.Module,
    inputs: Mapping[str, Tensor],
    *,
    backend: str,
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    dynamic: Mapping[str, str] | None = None,
) -> Callable[..., np.ndarray]:
    """``module`` (float32, the shapes of ``inputs``, its forward's float arguments by name) run by
    ``backend`` ("onnxruntime" or "openvino") with ``threads`` threads (default: torch's).

    dtype: float32, or with OpenVINO bfloat16 (its inference precision hint: weights and matmuls
    in bfloat16). dynamic: input name -> the name of its first dimension's size, which may then
    vary (:func:`~neuropoyo.streaming.export.onnx_model`). Returns ``f(*inputs) -> array``, the
    arguments (arrays or CPU tensors) in the order of ``inputs``, cast to float32; the output is
    float32.
    """
    if backend not in RUNTIME_PACKAGES:
        raise ValueError(f"runtime backend must be one of {', '.join(RUNTIME_PACKAGES)}, got {backend!r}")
    if dtype != torch.float32 and (backend != "openvino" or dtype not in OPENVINO_PRECISIONS):
        raise ValueError(f"backend {backend!r} decodes in float32{' or bfloat16' * (backend == 'openvino')}, not {dtype}")
    threads = threads or torch.get_num_threads()
    proto = onnx_model(module, inputs, ["output"], dynamic).SerializeToString()
    if backend == "onnxruntime":
        run = _onnxruntime(proto, threads)
    else:
        run = _openvino(proto, threads, OPENVINO_PRECISIONS[dtype])
    names = list(inputs)

    def call(*values: np.ndarray | Tensor) -> np.ndarray:
        return run({name: np.asarray(value, dtype=np.float32) for name, value in zip(names, values)})

    return call


def _onnxruntime(proto: bytes, threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # no spinning between runs: torch runs the rest of the update on the same cores meanwhile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
    return lambda arrays: session.run(None, arrays)[0]


def _openvino(proto: bytes, threads: int, precision: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import openvino

    core = openvino.Core()
    capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    if precision == "bf16" and "BF16" not in capabilities:
        warnings.warn(
            f"OpenVINO cannot compute in bfloat16 on this CPU (it offers {', '.join(capabilities)}): "
            "decoding in float32 instead, as accurate and slower than asked (bfloat16 needs AVX512-BF16 or AMX)",
            stacklevel=3,
        )
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    request = core.compile_model(core.read_model(proto, b""), "CPU", config).create_infer_request()

    def run(arrays: dict[str, np.ndarray]) -> np.ndarray:
        request.infer(arrays, share_inputs=True)
        return request.get_output_tensor(0).data.copy()

    return run
