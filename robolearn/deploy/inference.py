"""Inference backends of the controller loop: policy -> action chunk -> joint targets.

``LocalInference`` runs in the loop process (a worker thread); ``ProcessInference``
(robolearn.deploy.inference_proc) runs the same code in a child process, so inference never holds
the loop's GIL. Both raise ``ValueError`` naming the problem for a bad chunk.
"""
from __future__ import annotations

import numpy as np


class ObservationNotReady(ValueError):
    """A part of the observation (object pose, an image) has not arrived yet: wait, this is no policy fault."""


def chunk_to_targets(policy, obs_builder, mapper, state, last_command) -> np.ndarray:
    """Observation -> policy chunk (checked) -> joint-target chunk (H, command_dim) (checked)."""
    chunk = np.asarray(policy.act(obs_builder.build(state)), dtype=np.float64)
    if chunk.ndim == 1:
        chunk = chunk[None]
    if chunk.ndim != 2 or chunk.shape[1] != mapper.action_dim or chunk.shape[0] < 1:
        raise ValueError(f"policy returned shape {chunk.shape}, expected (H, {mapper.action_dim})")
    if not np.all(np.isfinite(chunk)):
        raise ValueError("policy returned non-finite actions")
    targets = np.asarray(mapper.to_targets(chunk, state, last_command), np.float64)
    if targets.shape != (chunk.shape[0], mapper.command_dim) or not np.all(np.isfinite(targets)):
        raise ValueError(f"action mapping gave {targets.shape} / non-finite joint targets")
    return targets


class LocalInference:
    def __init__(self, policy, obs_builder, mapper):
        self.policy, self.obs_builder, self.mapper = policy, obs_builder, mapper
        self.command_dim = mapper.command_dim

    def reset(self) -> None:
        self.policy.reset()

    def observe(self, state) -> None:
        observe = getattr(self.policy, "observe", None)
        if callable(observe):
            observe(self.obs_builder.build(state))

    def infer(self, state, last_command) -> np.ndarray:
        return chunk_to_targets(self.policy, self.obs_builder, self.mapper, state, last_command)

    def close(self) -> None:
        pass
