"""Consistency Policy: one-step (or few-step) action chunks from an EDM-parameterized consistency model."""
