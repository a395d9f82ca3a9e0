"""MuJoCo manipulation tasks, registered as ``sim/<name>``."""
from __future__ import annotations

import dataclasses

from robolearn.config_io import from_dict, load_yaml
from robolearn.envs.registry import register
from robolearn.shipped import resolve_task_config

_ENV_KEYS = {"robot", "cameras", "image_size", "privileged", "dense_reward", "render_mode"}


def build_env(task_cls, overrides: dict):
    """Split ``make`` overrides into env options and task-config fields (unknown keys are errors).

    ``config=`` is a YAML path or a shipped task config's name (``"pick_cube"``; ``"sim/pick_cube.yaml"``
    also works outside the repository), so a notebook or script finds it from any folder.
    """
    from robolearn.sim.manipulation_env import ManipulationEnv

    overrides = dict(overrides)
    config_path = overrides.pop("config", None)
    env_kwargs = {k: overrides.pop(k) for k in list(overrides) if k in _ENV_KEYS}
    if config_path is not None:
        cfg = load_yaml(task_cls.config_cls, resolve_task_config(config_path))
    else:
        cfg = task_cls.config_cls()
    if overrides:
        merged = {**dataclasses.asdict(cfg), **overrides}
        cfg = from_dict(task_cls.config_cls, merged, where=f"{task_cls.name} config")
    return ManipulationEnv(task_cls(cfg), **env_kwargs)


register("sim/pick_cube", "robolearn.sim.tasks.pick_cube:make_env")
register("sim/peg_insert", "robolearn.sim.tasks.peg_insert:make_env")
