"""Real-time decoding: the incremental decoder (:mod:`.decoder`) and the runtimes that can run its
updates (:mod:`.runtimes`, over the plain-tensor graphs of :mod:`.graphs`); the decoder
service (:mod:`.service`) on its transports (:mod:`.transport`: LSL, Redis), a recording replayed
as a live stream (:mod:`.replay`), both as the commands run them (:mod:`.serving`); ONNX export
(:mod:`.export`) and the replay benchmark (:mod:`.bench`)."""

from neuropoyo.streaming.decoder import StreamingDecoder

__all__ = ["StreamingDecoder"]
