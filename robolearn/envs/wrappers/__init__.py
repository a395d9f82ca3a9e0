"""Wrappers shared by sim and real envs; each is a ``gymnasium.Wrapper`` over the robolearn obs dict.

Compose them like SERL's stack, innermost first, e.g.::

    env = robolearn.make("sim/peg_insert")
    env = Intervention(env, device)     # a person's device input (base frame) replaces the policy's action
    env = RelativeFrame(env)            # needs the raw (D,) state with ee_pos / ee_quat slices
    env = Latency(env, obs_delay_steps=1, action_delay_steps=1)
    env = ObsNoise(env, state_std=0.002)
    env = TimeLimit(env, 200)
    env = ObsHistory(env, 2)
    env = ActionChunk(env, 8)           # the policy emits (8, A) chunks

Intervention sets ``info["intervene_action"]``; all the others pass it through untouched, except RelativeFrame, which
re-expresses it in the end-effector frame so it stays in the same frame as the policy's actions.
"""
from robolearn.envs.wrappers.action_chunk import ActionChunk
from robolearn.envs.wrappers.intervention import Intervention
from robolearn.envs.wrappers.obs_history import ObsHistory
from robolearn.envs.wrappers.relative_frame import RelativeFrame
from robolearn.envs.wrappers.sim2real import Latency, ObsNoise
from robolearn.envs.wrappers.time_limit import TimeLimit

__all__ = ["ActionChunk", "Intervention", "Latency", "ObsHistory", "ObsNoise", "RelativeFrame", "TimeLimit"]
