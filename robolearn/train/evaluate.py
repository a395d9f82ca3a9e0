"""Policy evaluation in sim: success rate with a 95% Wilson interval, episode lengths, rollout videos.

``load_policy(path)`` is the one entry point for turning a checkpoint folder (or run directory) into
a policy; ``PolicySource`` adapts it to the collect command's source interface (reset(seed), act(obs)).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (good at 0% / 100% and small n, unlike the normal one)."""
    if n <= 0:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def load_policy(path: str | Path, device: str = "cpu", expected_type: str | None = None):
    """A ready-to-act policy (EMA weights, eval mode) from a checkpoint folder or run directory."""
    from robolearn.train.checkpoint import load_policy as _load

    return _load(path, expected_type=expected_type, device=device)


def sampling_kwargs(policy, sampler: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """Explicit sampling settings (defaults from the config): diffusion (sampler, steps), consistency (steps)."""
    cfg = policy.config
    if policy.type == "diffusion":
        kind = sampler or cfg.sampler
        default = cfg.num_train_timesteps if kind == "ddpm" else cfg.num_inference_steps
        return {"sampler": kind, "steps": int(steps or default)}
    if sampler:
        raise ValueError(f"--sampler applies to diffusion policies, not {policy.type!r}")
    return {"steps": int(steps or getattr(cfg, "inference_steps", 1))}


class PolicySource:
    """collect-command source: ``register_source("policy", "robolearn.train.evaluate:PolicySource")``."""

    def __init__(self, env, options):
        if not getattr(options, "checkpoint", None):
            raise ValueError("--source policy needs --checkpoint DIR")
        self.policy = load_policy(options.checkpoint)
        self.generator = torch.Generator()
        # CPU-sized nets at batch 1: extra OpenMP threads only add barrier waits (10-50x slower on a busy machine)
        torch.set_num_threads(1)

    def reset(self, seed: int) -> None:
        self.policy.reset()
        self.generator.manual_seed(int(seed))

    def act(self, obs: dict) -> np.ndarray:
        return self.policy.select_action(obs, generator=self.generator)


def make_eval_env(policy, env_name: str, render: bool, max_steps: int | None = None):
    import robolearn

    kw: dict[str, Any] = {}
    if policy.config.cameras:
        kw.update(cameras=list(policy.config.cameras), image_size=policy.config.image_size)
    if render:
        kw["render_mode"] = "rgb_array"
    if max_steps:
        kw["max_episode_steps"] = max_steps
    return robolearn.make(env_name, **kw)


def rollout(policy, env, seed: int, sample_kw: dict[str, Any], frames: list | None = None) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    policy.reset()
    obs, _ = env.reset(seed=seed)
    if frames is not None:
        frames.append(env.render())
    length, success, ret = 0, False, 0.0
    while True:
        action = policy.select_action(obs, generator=gen, **sample_kw)
        obs, reward, terminated, truncated, info = env.step(action)
        length += 1
        ret += reward
        success = success or bool(info.get("success", False))
        if frames is not None:
            frames.append(env.render())
        if terminated or truncated:
            break
    return {"seed": seed, "success": success, "length": length, "return": ret}


def evaluate(policy, env_name: str, episodes: int = 50, seed: int = 100_000, sampler: str | None = None,
             steps: int | None = None, video_episodes: int = 0, video_dir: str | Path | None = None,
             max_steps: int | None = None, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    sample_kw = sampling_kwargs(policy, sampler, steps)
    policy.eval()
    env = make_eval_env(policy, env_name, render=video_episodes > 0, max_steps=max_steps)
    if env.observation_space["state"].shape[0] != policy.config.state_dim:
        raise ValueError(f"{env_name} has state dim {env.observation_space['state'].shape[0]}, "
                         f"policy expects {policy.config.state_dim}")
    if env.action_space.shape[0] != policy.config.action_dim:
        raise ValueError(f"{env_name} has action dim {env.action_space.shape[0]}, policy outputs {policy.config.action_dim}")
    results, videos = [], []
    bar = tqdm(range(episodes), disable=not progress, desc="eval", dynamic_ncols=True)
    try:
        for i in bar:
            frames: list | None = [] if i < video_episodes else None
            results.append(rollout(policy, env, seed + i, sample_kw, frames))
            if frames:
                videos.append(str(_write_video(frames, Path(video_dir or "."), f"episode_{i:03d}.mp4", env)))
            bar.set_postfix(success=f"{np.mean([r['success'] for r in results]):.2f}")
    finally:
        env.close()
    k = sum(r["success"] for r in results)
    lo, hi = wilson_interval(k, episodes)
    return {
        "env": env_name, "policy_type": policy.type, "sampling": sample_kw,
        "episodes": episodes, "successes": k, "success_rate": k / episodes, "ci95": [lo, hi],
        "mean_length": float(np.mean([r["length"] for r in results])),
        "mean_return": float(np.mean([r["return"] for r in results])),
        "seeds": [seed, seed + episodes - 1], "videos": videos, "per_episode": results,
    }


def _write_video(frames: list, folder: Path, name: str, env) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fps = float(getattr(env, "metadata", {}).get("render_fps", 20))
    try:
        from robolearn.data.video import write_mp4
    except ImportError:  # the data helper's writer is absent: imageio directly
        import imageio.v2 as imageio

        path = folder / name
        imageio.mimwrite(str(path), [np.asarray(f) for f in frames], fps=fps)
        return path
    return write_mp4(frames, folder / name, fps=fps)


def save_json(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(path)
    return path
