"""Recordings in memory and on disk, splits, and the built-in simulator."""

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.labels import trial_label_stream
from neuropoyo.data.recording import Recording, RecordingInfo, Spikes, TimeSeries, Traces, Units

__all__ = ["Intervals", "Recording", "RecordingInfo", "Spikes", "TimeSeries", "Traces", "Units", "trial_label_stream"]
