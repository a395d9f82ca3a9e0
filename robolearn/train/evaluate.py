"""Policy evaluation in sim: success rate with a 95% Wilson interval, episode lengths, rollout videos.

``load_policy(path)`` is the one entry point for turning a checkpoint folder (or run directory) into
a policy; ``PolicySource`` adapts it to the collect command's source interface (reset(seed), act(obs)).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from robolearn.train.checkpoint import check_env, env_kwargs, load_policy  # noqa: F401  (the one loader)


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
    # at 0 (or n) successes the bound is exactly 0 (or 1); rounding must not leave 5e-17 above the estimate
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi



def sampling_kwargs(policy, sampler: str | None = None, steps: int | None = None) -> dict[str, Any]:
    """Explicit sampling settings (defaults from the config): diffusion (sampler, steps), consistency (steps)."""
    cfg = policy.config
    if policy.type == "diffusion":
        kind = sampler or cfg.sampler
        default = cfg.num_train_timesteps if kind == "ddpm" else cfg.num_inference_steps
        return {"sampler": kind, "steps": int(steps or default)}
    if sampler:
        raise ValueError(f"--sampler applies to diffusion policies, not {policy.type!r}")
    if policy.type != "consistency":  # RL policies (gaussian, residual, expo) carry their own settings
        if steps:
            raise ValueError(f"--steps applies to diffusion and consistency policies, not {policy.type!r}")
        return {}
    return {"steps": int(steps or getattr(cfg, "inference_steps", 1))}


class PolicySource:
    """collect-command source: ``register_source("policy", "robolearn.train.evaluate:PolicySource")``."""

    def __init__(self, env, options):
        if not getattr(options, "checkpoint", None):
            raise ValueError("--source policy needs --checkpoint DIR")
        self.policy = load_policy(options.checkpoint)
        env_name = getattr(options, "env", None)
        if env_name:
            check_env(self.policy, env_name, bool(getattr(options, "allow_env_mismatch", False)))
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

    kw: dict[str, Any] = env_kwargs(policy)
    if policy.config.cameras:
        kw.update(cameras=list(policy.config.cameras), image_size=policy.config.image_size)
    if render:
        kw["render_mode"] = "rgb_array"
    if max_steps:
        kw["max_episode_steps"] = max_steps
    return robolearn.make(env_name, **kw)


def rollout(policy, env, seed: int, sample_kw: dict[str, Any], frames: list | None = None,
            steps: list | None = None, *, render: Callable[[], np.ndarray] | None = None,
            frame_success: list | None = None) -> dict[str, Any]:
    """One episode; ``policy`` is anything with ``reset()`` and ``select_action(obs, generator, **kw)``
    (a loaded checkpoint, or an RL algorithm's acting view during training). ``steps`` collects
    (obs, action, reward) per step (for comparing a critic's values with the returns that followed).
    ``frames`` collects one video frame per step from ``render`` (default ``env.render``), and
    ``frame_success`` whether the task had succeeded by each of those frames (for the video's marks)."""
    render = render or env.render
    gen = torch.Generator().manual_seed(seed)
    policy.reset()
    obs, _ = env.reset(seed=seed)
    if frames is not None:
        frames.append(render())
        if frame_success is not None:
            frame_success.append(False)
    length, success, ret = 0, False, 0.0
    while True:
        action = policy.select_action(obs, generator=gen, **sample_kw)
        if steps is not None:
            steps.append((obs, np.asarray(action, np.float32)))
        obs, reward, terminated, truncated, info = env.step(action)
        if steps is not None:
            steps[-1] = (*steps[-1], float(reward))
        length += 1
        ret += reward
        success = success or bool(info.get("success", False))
        if frames is not None:
            frames.append(render())
            if frame_success is not None:
                frame_success.append(success)
        if terminated or truncated:
            break
    return {"seed": seed, "success": success, "length": length, "return": ret}


def video_renderer(env, size: int = 256, cameras: Sequence[str] = ()) -> Callable[[], np.ndarray]:
    """A function returning the current video frame: ``cameras`` (default: the front view) rendered at
    ``size`` px, side by side when there are several.

    Separate from the observation: a policy trained on 84 px images keeps seeing 84 px, while the video
    a person watches needs enough pixels to judge a grasp. Envs that cannot render a camera at another
    size (no ``render_camera(camera, size)``) give their ``render()`` frame, scaled up to ``size``.
    """
    from robolearn.data.video import side_by_side, upscale

    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"video_size must be an int >= 16, got {size!r}")
    size = int(size)
    base = getattr(env, "unwrapped", env)
    cams = [str(c) for c in cameras] or ["front"]
    if hasattr(base, "render_camera"):
        vis = getattr(getattr(getattr(base, "model", None), "vis", None), "global_", None)
        limit = min(int(vis.offwidth), int(vis.offheight)) if vis is not None else None
        if limit is not None and size > limit:
            raise ValueError(f"video_size {size} is larger than the scene's offscreen buffer "
                             f"({int(vis.offwidth)}x{int(vis.offheight)}); use at most {limit}")

        def render() -> np.ndarray:
            views = {c: base.render_camera(c, size) for c in cams}
            return side_by_side(views) if len(views) > 1 else views[cams[0]]

        return render

    def render_fallback() -> np.ndarray:
        frame = env.render()
        if frame is None:
            raise ValueError(f"{type(base).__name__} returned no frame from render(): "
                             "make it with render_mode='rgb_array' to record videos")
        return upscale(np.asarray(frame, dtype=np.uint8), size)

    return render_fallback


def evaluate(policy, env_name: str, episodes: int = 50, seed: int = 100_000, sampler: str | None = None,
             steps: int | None = None, video_episodes: int = 0, video_dir: str | Path | None = None,
             max_steps: int | None = None, progress: bool = True, allow_env_mismatch: bool = False,
             video_size: int = 256, video_cameras: Sequence[str] | None = None,
             annotate_video: bool = True) -> dict[str, Any]:
    """Success rate (95% Wilson interval), lengths and returns over ``episodes`` seeded episodes.

    The first ``video_episodes`` are also written as mp4s into ``video_dir``: ``video_cameras``
    (default: the policy's cameras, else the front view) side by side at ``video_size`` px, each frame
    marked with its step and, with ``annotate_video``, the outcome (green once the task succeeded,
    red at the end of a failed episode).
    """
    from tqdm import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if isinstance(video_episodes, bool) or not isinstance(video_episodes, (int, np.integer)) or video_episodes < 0:
        raise ValueError(f"video_episodes must be an int >= 0, got {video_episodes!r}")
    if isinstance(video_size, bool) or not isinstance(video_size, (int, np.integer)) or video_size < 16:
        raise ValueError(f"video_size must be an int >= 16, got {video_size!r}")
    check_env(policy, env_name, allow_env_mismatch)
    sample_kw = sampling_kwargs(policy, sampler, steps)
    policy.eval()
    env = make_eval_env(policy, env_name, render=video_episodes > 0, max_steps=max_steps)
    results, videos = [], []
    render = None
    try:  # a refused env is closed too (its GL context outlives the error otherwise)
        if env.observation_space["state"].shape[0] != policy.config.state_dim:
            raise ValueError(f"{env_name} has state dim {env.observation_space['state'].shape[0]}, "
                             f"policy expects {policy.config.state_dim}")
        if env.action_space.shape[0] != policy.config.action_dim:
            raise ValueError(f"{env_name} has action dim {env.action_space.shape[0]}, "
                             f"policy outputs {policy.config.action_dim}")
        if video_episodes > 0:
            cams = tuple(video_cameras) if video_cameras is not None else tuple(policy.config.cameras or ())
            render = video_renderer(env, video_size, cams)
    except BaseException:
        env.close()
        raise
    bar = tqdm(range(episodes), disable=not progress, desc="eval", dynamic_ncols=True)
    try:
        for i in bar:
            frames: list | None = [] if i < video_episodes else None
            flags: list[bool] = []
            results.append(rollout(policy, env, seed + i, sample_kw, frames, render=render, frame_success=flags))
            if frames:
                if annotate_video:
                    from robolearn.data.video import annotate_episode

                    frames = annotate_episode(np.stack(frames), flags)
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
    from robolearn.data.video import write_mp4

    return write_mp4(frames, folder / name, fps=fps)


def save_json(result: dict[str, Any], path: str | Path) -> Path:
    from robolearn.data.fsutil import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, result, indent=2)
