"""Real-time decoding: the incremental decoder (:mod:`.decoder`) and its replay benchmark (:mod:`.bench`)."""

from neuropoyo.streaming.decoder import StreamingDecoder

__all__ = ["StreamingDecoder"]
