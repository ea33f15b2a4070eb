"""Evaluation: stitching overlapping window predictions, metrics, reports."""
