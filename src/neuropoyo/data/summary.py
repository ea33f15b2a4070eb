"""A human-readable summary of one recording (what ``neuropoyo inspect`` prints)."""

from __future__ import annotations

import numpy as np

from neuropoyo.data.recording import Recording


def _median_rate(timestamps: np.ndarray) -> float:
    """Sampling rate in Hz from the median step (NaN with fewer than two samples)."""
    steps = np.diff(timestamps)
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if steps.size else float("nan")


def summarize(recording: Recording) -> dict:
    """Counts, durations and rates of ``recording`` as a JSON-ready dict."""
    recorded = recording.domain.total_duration()
    n_units = len(recording.units)
    counts = np.bincount(recording.spikes.unit_index, minlength=n_units)
    traces = recording.traces
    spiking = np.ones(n_units, dtype=bool)
    spiking[traces.unit_index] = False  # trace columns: units whose data are frames, not spikes
    frames = {"kind": traces.kind, "frames": len(traces), "frame_rate_hz": _median_rate(traces.timestamps)}
    return {
        "recording_id": recording.recording_id,
        "info": recording.info.to_dict(),
        "units": n_units,
        "silent_units": int(np.sum(spiking & (counts == 0))),
        "trace_units": traces.n_units,
        "traces": frames if recording.has_traces else None,
        "spikes": len(recording.spikes),
        "recorded_s": recorded,
        "span_s": [recording.start, recording.end],
        "recorded_spans": len(recording.domain),
        "spikes_per_s": len(recording.spikes) / recorded if recorded > 0 else 0.0,
        "mean_rate_hz": float(counts[spiking].mean() / recorded) if recorded > 0 and spiking.any() else 0.0,
        "behavior": {
            name: {
                "samples": len(stream),
                "dim": stream.dim,
                "rate_hz": _median_rate(stream.timestamps),
                "unit": stream.unit,
                **({"classes": list(stream.classes)} if stream.is_labels else {}),
            }
            for name, stream in recording.behavior.items()
        },
        "trials": len(recording.trials),
        "trial_columns": sorted(recording.trials.columns),
        "splits": {
            name: {"intervals": len(s), "duration_s": s.total_duration()}
            for name, s in recording.splits.items()
        },
        "intervals": {name: len(s) for name, s in recording.intervals.items()},
    }


def _unit_kinds(summary: dict) -> str:
    """What the units of a summary hold: "3 without spikes", "18 with traces, 0 without spikes or
    traces"."""
    if not summary["trace_units"]:
        return f"{summary['silent_units']} without spikes"
    return f"{summary['trace_units']} with traces, {summary['silent_units']} without spikes or traces"


def format_summary(summary: dict) -> str:
    """Multi-line text for a terminal."""
    info = summary["info"]
    start, end = summary["span_s"]
    lines = [
        f"recording  {summary['recording_id']}",
        f"  brainset {info['brainset'] or '-'} | subject {info['subject'] or '-'} | "
        f"task {info['task'] or '-'} | species {info['species'] or '-'} | "
        f"areas {', '.join(info['brain_areas']) or '-'}",
        f"  units    {summary['units']} ({_unit_kinds(summary)})",
        f"  time     {summary['recorded_s']:.1f} s recorded in {summary['recorded_spans']} span(s), "
        f"from {start:.3f} to {end:.3f} s",
    ]
    traces = summary["traces"]
    if summary["spikes"] or not traces:
        lines.append(
            f"  spikes   {summary['spikes']:,} ({summary['spikes_per_s']:.1f} spikes/s, "
            f"mean {summary['mean_rate_hz']:.2f} Hz per unit)"
        )
    if traces:
        lines.append(
            f"  traces   {traces['kind']}: {traces['frames']:,} frames x {summary['trace_units']} "
            f"units at {traces['frame_rate_hz']:.1f} Hz"
        )
    for name, stream in summary["behavior"].items():
        kind = (
            f"labels of {len(stream['classes'])} classes: {' '.join(stream['classes'])}"
            if "classes" in stream
            else stream["unit"] or "no unit"
        )
        lines.append(f"  behavior {name}: {stream['samples']:,} x {stream['dim']} at {stream['rate_hz']:.1f} Hz [{kind}]")
    if summary["trials"]:
        columns = ", ".join(summary["trial_columns"]) or "no columns"
        lines.append(f"  trials   {summary['trials']} ({columns})")
    else:
        lines.append("  trials   none (continuous recording)")
    for name, split in summary["splits"].items():
        lines.append(
            f"  split    {name}: {split['duration_s']:.1f} s in {split['intervals']} interval(s)"
        )
    if not summary["splits"]:
        lines.append("  split    none assigned")
    for name, count in summary["intervals"].items():
        lines.append(f"  interval {name}: {count}")
    return "\n".join(lines)
