"""The Python API: the main jobs of the command line as functions, for notebooks and scripts.

Why: the commands' building blocks (``train_bc``, ``OnlineTrainer``, ``evaluate``...) take parsed
recipes, episode lists and config objects, so driving them from Python meant reading the source. These
functions take what the commands take - names and paths - and return plain dicts naming the files they
wrote (JSON-ready), so a notebook can chain them::

    import robolearn

    demos = robolearn.collect("sim/pick_cube", "runs/demo/data", episodes=20)
    bc = robolearn.train_bc(demos["out"], "runs/demo/bc", recipe="consistency", steps=2000)
    print(robolearn.evaluate(bc["checkpoint"], episodes=20)["success_rate"])
    rl = robolearn.train_rl("sim/pick_cube", "runs/demo/rl", algo="residual", base=bc["checkpoint"],
                            demos=demos["out"], steps=20_000)
    policy = robolearn.load_policy(rl["out"])          # a run folder or a checkpoint folder
    env = robolearn.make("sim/pick_cube", **policy.meta.get("env_kwargs", {}))
    obs, _ = env.reset(seed=0)
    policy.reset()                                      # at every episode start (chunk queues, histories)
    action = policy.select_action(obs)                  # numpy array in the env's action box

Recipes are shipped names (``consistency``, ``diffusion``, ``rlpd``... see ``robolearn.shipped``) or
YAML paths. Every function checks its numbers before any work and raises ``ValueError`` /
``FileNotFoundError`` naming the problem, like the commands do. ``progress=False`` silences the
progress bars and status lines.

This module sits at the top of the import layers (with ``cli``): it may import any layer, and
``robolearn/__init__.py`` re-exports its functions lazily so ``import robolearn`` stays light.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["collect", "train_bc", "train_rl", "evaluate", "load_policy"]


def _positive(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_recipe(recipe: str | Path | dict) -> tuple[dict, str]:
    """(the recipe's mapping, where it came from) for a shipped name, a YAML path or a dict."""
    if isinstance(recipe, dict):
        return copy.deepcopy(recipe), "recipe dict"
    import yaml

    from robolearn.shipped import resolve_recipe

    path = resolve_recipe(recipe)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data, str(path)


def collect(env: str, out: str | Path, *, episodes: int, source: str = "expert", noise: float = 0.0,
            seed: int = 0, cameras: Sequence[str] = (), image_size: int = 84, max_steps: int | None = None,
            checkpoint: str | Path | None = None, allow_env_mismatch: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """Record episodes into the episode store ``out`` until it holds ``episodes`` of them (``robolearn collect``).

    ``source`` is ``expert`` (the task's scripted expert, ``noise`` makes it worse), ``random`` or
    ``policy`` (a trained ``checkpoint``). Episode i runs with seed ``seed + i``, so a second call with
    a larger ``episodes`` continues the same store. ``cameras`` (e.g. ``["front", "wrist"]``) records
    images of ``image_size`` px. Returns the summary: ``out``, ``episodes`` (this call),
    ``success_rate``, ``store_episodes``, ``store_success_rate``, step counts and wall time.
    """
    from robolearn.train.collect_cmd import collect as _collect

    _positive("episodes", episodes)
    _positive("image_size", image_size)
    _positive("max_steps", max_steps, allow_none=True)
    return _collect(env, source, episodes, str(out), noise=noise, seed=seed, cameras=tuple(cameras),
                    image_size=image_size, max_steps=max_steps, checkpoint=str(checkpoint) if checkpoint else None,
                    progress=progress, log=print if progress else None, allow_env_mismatch=allow_env_mismatch)


def train_bc(data: str | Path, out: str | Path, *, recipe: str | Path | dict = "diffusion",
             steps: int | None = None, overrides: dict | None = None, resume: bool = False,
             device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Train a base policy by behaviour cloning on the demos in ``data`` (``robolearn train bc``).

    ``recipe``: a shipped name (``diffusion``, ``consistency``, ``diffusion_image``...), a YAML path or
    the recipe as a dict. ``overrides`` is merged into it section by section, e.g.
    ``{"train": {"batch_size": 32}, "policy": {"horizon": 8}}``; ``steps`` overrides ``train.steps``.
    ``resume=True`` continues the checkpoint already in ``out``. Returns ``out``, ``checkpoint`` (the
    folder ``evaluate`` / ``load_policy`` / ``train_rl(base=...)`` take), ``scalars``, ``steps``,
    ``first_loss`` / ``final_loss``, ``episodes`` and ``wall_time_s``.
    """
    from robolearn.device import resolve_device
    from robolearn.train.bc import load_episodes, recipe_from_dict
    from robolearn.train.bc import train_bc as _train_bc
    from robolearn.train.bc_cmd import describe_data, training_summary

    _positive("steps", steps, allow_none=True)
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"overrides must be a dict of recipe sections, got {type(overrides).__name__}")
    raw, where = _read_recipe(recipe)
    spec = recipe_from_dict(_merge(raw, overrides or {}), where=where)
    dev = resolve_device(device)
    episodes = load_episodes(data, success_only=spec.train.success_only)
    described, env = describe_data(episodes, data)
    if progress:
        print(f"train bc: {spec.type} policy ({where}) on {described}, {steps or spec.train.steps} steps on {dev} "
              f"-> {out}", flush=True)
    t0 = time.perf_counter()
    result = _train_bc(spec, episodes, out, steps=steps, resume=resume, data_path=str(data), progress=progress,
                       device=dev)
    return training_summary("train bc", result, out, wall_s=time.perf_counter() - t0, policy=spec.type,
                            recipe=where, env=env, data=str(data), episodes=len(episodes), device=str(dev))


def train_rl(env: str, out: str | Path, *, algo: str = "rlpd", recipe: str | Path | dict | None = None,
             demos: str | Path | None = None, base: str | Path | None = None, steps: int | None = None,
             overrides: dict | None = None, env_overrides: dict | None = None, seed: int = 0,
             resume: bool = False, device: str = "cpu", progress: bool = True) -> dict[str, Any]:
    """Off-policy RL on ``env`` from online data (plus ``demos``, an episode store) (``robolearn train rl``).

    ``algo`` is a registered algorithm (``rlpd``, ``sac``, ``residual``, ``expo``, ``conrft``...);
    ``residual``, ``expo`` and ``conrft`` refine a ``base`` policy (a ``train_bc`` checkpoint or run).
    ``recipe`` (shipped name, YAML path or dict) is merged on the algorithm's preset, then ``overrides``
    (``{"agent": {...}, "train": {...}}``), ``steps`` (env steps, ``train.steps``) and
    ``env_overrides`` (``train.env_overrides``, e.g. ``{"action_repeat": 4}``). Returns the run summary:
    ``out``, ``checkpoint`` (the step folder to resume), ``policy`` (for ``evaluate`` / ``load_policy``),
    ``scalars``, step counts and the final ``eval/success_rate`` / ``eval/return``.
    """
    from robolearn.device import resolve_device
    from robolearn.rl import registry
    from robolearn.train.online import OnlineTrainer
    from robolearn.train.rl_config import build_config

    _positive("steps", steps, allow_none=True)
    if algo not in registry.names():
        raise ValueError(f"unknown algo {algo!r}; registered: {', '.join(registry.names())}")
    for name, value in (("overrides", overrides), ("env_overrides", env_overrides)):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name} must be a dict, got {type(value).__name__}")
    raw, where = _read_recipe(recipe) if recipe is not None else ({}, "preset")
    over = _merge({"train": {}}, overrides or {})
    if steps is not None:
        over["train"]["steps"] = steps
    if env_overrides:
        over["train"]["env_overrides"] = dict(env_overrides)
    cfg = build_config(algo, raw, over, where=where)
    algo_cls = registry.algorithm_class(algo)
    if algo_cls.needs_base and not base:
        raise ValueError(f"algo {algo!r} refines a base policy: pass base= (a train_bc checkpoint or run folder)")
    if base and not algo_cls.needs_base:
        raise ValueError(f"algo {algo!r} does not use a base policy (base={str(base)!r})")
    extra = {"base": str(base)} if base else {}
    trainer = OnlineTrainer(cfg, env, Path(out), demos=str(demos) if demos else None, seed=seed,
                            device=resolve_device(device), **extra)
    if progress:  # the command's header line: env steps, and agent steps x repeat when they differ
        from robolearn.train.rl_cmd import header

        print(header(trainer.plan(), resume=resume), flush=True)
    t0 = time.perf_counter()
    summary = dict(trainer.run(resume=resume, progress=progress))
    summary.setdefault("out", str(out))
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    return summary


def evaluate(checkpoint: str | Path, env: str | None = None, *, episodes: int = 10, seed: int = 100_000,
             sampler: str | None = None, steps: int | None = None, max_steps: int | None = None,
             video_episodes: int = 0, video_dir: str | Path | None = None, save_to: str | Path | None = None,
             allow_env_mismatch: bool = False, progress: bool = True) -> dict[str, Any]:
    """Success rate of a checkpoint (or run folder) over ``episodes`` seeded episodes (``robolearn eval``).

    ``env`` defaults to the env the policy was trained on; another env is refused unless
    ``allow_env_mismatch``. ``sampler`` / ``steps`` choose diffusion sampling (``ddim``/``ddpm``, steps)
    or consistency steps. The first ``video_episodes`` are written as MP4s into ``video_dir``;
    ``save_to`` writes the full result as JSON. Returns ``success_rate``, ``ci95`` (Wilson 95%),
    ``successes``, ``mean_length``, ``mean_return``, ``videos``, ``per_episode`` and ``result_file``.
    """
    from robolearn.train.evaluate import evaluate as _evaluate
    from robolearn.train.evaluate import load_policy as _load_policy
    from robolearn.train.evaluate import save_json

    _positive("episodes", episodes)
    _positive("video_episodes", video_episodes, minimum=0)
    policy = _load_policy(checkpoint)
    env = env or (getattr(policy, "meta", None) or {}).get("env")
    if not env:
        raise ValueError(f"{checkpoint} does not record the env it was trained on: pass env=")
    if video_episodes and video_dir is None:
        video_dir = Path(save_to).with_suffix("") if save_to else Path(checkpoint) / "eval" / "videos"
    result = _evaluate(policy, env, episodes, seed=seed, sampler=sampler, steps=steps, video_episodes=video_episodes,
                       video_dir=video_dir, max_steps=max_steps, progress=progress,
                       allow_env_mismatch=allow_env_mismatch)
    result["checkpoint"] = str(checkpoint)
    result["result_file"] = str(save_json(result, save_to)) if save_to else None
    if progress:
        lo, hi = result["ci95"]
        print(f"eval: {checkpoint} on {env}: success {result['successes']}/{episodes} = {result['success_rate']:.0%} "
              f"(95% CI {lo:.0%}-{hi:.0%}), mean length {result['mean_length']:.0f}", flush=True)
    return result


def load_policy(path: str | Path, device: str = "cpu"):
    """The policy in a checkpoint folder, a BC run folder or an RL run folder (its latest step), ready to act.

    Act with ``policy.reset()`` at each episode start, then ``action = policy.select_action(obs)`` for
    each observation dict the env returns (``generator=torch.Generator().manual_seed(s)`` makes the
    sampling reproducible). ``policy.meta`` records what it was trained on: ``env``, ``env_kwargs``
    (pass them to ``robolearn.make``), ``trainer``.
    """
    from robolearn.device import resolve_device
    from robolearn.train.evaluate import load_policy as _load_policy

    return _load_policy(path, device=resolve_device(device))
