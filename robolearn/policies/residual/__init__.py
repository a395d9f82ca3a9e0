"""Residual policy: a frozen BC chunk policy plus a per-step residual head (exported by residual RL)."""
