"""neuropoyo: POYO spike-token transformers for decoding behavior from many recordings.

The public API (:mod:`neuropoyo.api` and the modules named below), loaded on first use so that
``import neuropoyo`` stays light::

    import neuropoyo
    recordings = neuropoyo.simulate(animals=2, days=2)
    dec = neuropoyo.Decoder().fit(recordings[:3], out="run")
    dec.score(recordings[:3])["mean_r2"]
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    **dict.fromkeys(
        ("Decoder", "DemoResult", "baselines", "compare", "demo", "evaluate", "finetune", "predict",
         "read_recordings", "simulate", "train", "write_recordings"),
        "neuropoyo.api",
    ),
    **dict.fromkeys(
        ("Intervals", "Recording", "RecordingInfo", "Spikes", "TimeSeries", "Traces", "Units", "trial_label_stream"),
        "neuropoyo.data",
    ),
    **dict.fromkeys(("read_recording", "write_recording"), "neuropoyo.data.store"),
    "assign_splits": "neuropoyo.data.splits",
    "prepare_nwb": "neuropoyo.data.importers.nwb",
    "prepare_brainsets": "neuropoyo.data.importers.brainsets",
    **dict.fromkeys(("from_pynapple", "to_pynapple"), "neuropoyo.data.importers.pynapple"),
    "check_recordings": "neuropoyo.data.directory",
    **dict.fromkeys(("TrainedModel", "load_model", "save_model"), "neuropoyo.trained"),
    **dict.fromkeys(("RunConfig", "presets"), "neuropoyo.training.config"),
    "FinetuneConfig": "neuropoyo.training.finetune",
    "POYOConfig": "neuropoyo.model.config",
    "StreamingDecoder": "neuropoyo.streaming.decoder",
    "DecoderService": "neuropoyo.streaming.service",
    "import_checkpoint": "neuropoyo.interop.torch_brain_checkpoint",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


class _Package(types.ModuleType):
    """The package, whose public function ``baselines`` keeps its name when the subpackage
    ``neuropoyo.baselines`` is imported (the import system would set the subpackage in its place);
    the subpackage stays reachable as ``from neuropoyo.baselines import decoders``."""

    def __setattr__(self, name: str, value) -> None:
        if not (name in _EXPORTS and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'neuropoyo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
