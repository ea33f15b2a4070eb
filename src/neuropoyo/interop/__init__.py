"""Bridges to other POYO implementations: read their files into neuropoyo model directories."""

from neuropoyo.interop.torch_brain_checkpoint import (
    DEFAULT_READOUT,
    config_from_hparams,
    convert_state_dict,
    import_checkpoint,
    read_lightning_checkpoint,
)

__all__ = [
    "DEFAULT_READOUT",
    "config_from_hparams",
    "convert_state_dict",
    "import_checkpoint",
    "read_lightning_checkpoint",
]
