"""Scoring a detector against a stream's ground truth: the figures, live and offline."""
