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
    return {
        "recording_id": recording.recording_id,
        "info": recording.info.to_dict(),
        "units": n_units,
        "silent_units": int(np.sum(counts == 0)),
        "spikes": len(recording.spikes),
        "recorded_s": recorded,
        "span_s": [recording.start, recording.end],
        "recorded_spans": len(recording.domain),
        "spikes_per_s": len(recording.spikes) / recorded if recorded > 0 else 0.0,
        "mean_rate_hz": float(counts.mean() / recorded) if recorded > 0 and n_units else 0.0,
        "behavior": {
            name: {
                "samples": len(stream),
                "dim": stream.dim,
                "rate_hz": _median_rate(stream.timestamps),
                "unit": stream.unit,
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


def format_summary(summary: dict) -> str:
    """Multi-line text for a terminal."""
    info = summary["info"]
    start, end = summary["span_s"]
    lines = [
        f"recording  {summary['recording_id']}",
        f"  brainset {info['brainset'] or '-'} | subject {info['subject'] or '-'} | "
        f"task {info['task'] or '-'} | species {info['species'] or '-'} | "
        f"areas {', '.join(info['brain_areas']) or '-'}",
        f"  units    {summary['units']} ({summary['silent_units']} without spikes)",
        f"  time     {summary['recorded_s']:.1f} s recorded in {summary['recorded_spans']} span(s), "
        f"from {start:.3f} to {end:.3f} s",
        f"  spikes   {summary['spikes']:,} ({summary['spikes_per_s']:.1f} spikes/s, "
        f"mean {summary['mean_rate_hz']:.2f} Hz per unit)",
    ]
    for name, stream in summary["behavior"].items():
        lines.append(
            f"  behavior {name}: {stream['samples']:,} x {stream['dim']} at "
            f"{stream['rate_hz']:.1f} Hz [{stream['unit'] or 'no unit'}]"
        )
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
