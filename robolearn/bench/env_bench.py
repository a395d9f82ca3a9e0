"""``robolearn bench env``: env steps/s against a raw ``mujoco.mj_step`` loop on the same model.

Raw and env runs are interleaved repetition by repetition, so drift on a noisy machine hits both
alike; medians are reported. The raw loop advances the env's own model and data by the same
number of substeps per step, so the ratio isolates what the env adds (action handling,
observation, reward) over physics.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from robolearn.bench.common import machine_info, median, rate, write_json


def add_arguments(parser) -> None:
    parser.add_argument("--env", default="sim/pick_cube")
    parser.add_argument("--steps", type=int, default=500, help="env steps per repetition")
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median reported)")
    parser.add_argument("--sizes", default="84,128", help="image sizes for the camera runs")
    parser.add_argument("--out", default="runs/bench/env.json")


def _configs(sizes: list[int]) -> list[tuple[str, tuple[str, ...], int]]:
    cams = [("state", (), 0)]
    for size in sizes:
        cams.append((f"1cam_{size}px", ("front",), size))
        cams.append((f"2cam_{size}px", ("front", "wrist"), size))
    return cams


def bench_env(env_name: str, steps: int = 500, reps: int = 5, sizes=(84, 128)) -> dict:
    import mujoco

    import robolearn

    if steps <= 0 or reps <= 0:
        raise ValueError("steps and reps must be positive")
    overrides = {"max_episode_steps": 10**9, "terminate_on_success": False}
    envs = {}
    for label, cams, size in _configs(list(sizes)):
        kwargs = dict(overrides, cameras=list(cams), image_size=size or 84)
        env = robolearn.make(env_name, **kwargs)
        env.reset(seed=0)
        envs[label] = env
    base = envs["state"].unwrapped
    model, data, nsub = base.model, base.data, base.n_substeps
    action = np.zeros(base.action_space.shape, np.float32)
    results: dict[str, list[float]] = {label: [] for label in envs}
    results["raw_mj_step"] = []
    for _ in tqdm(range(reps), desc=f"bench env {env_name}", unit="rep"):
        results["raw_mj_step"].append(rate(lambda: mujoco.mj_step(model, data, nstep=nsub), steps))
        for label, env in envs.items():
            n = steps if label == "state" else max(20, steps // 5)
            results[label].append(rate(lambda env=env: env.step(action), n))
    med = {k: median(v) for k, v in results.items()}
    return {
        "benchmark": "env",
        "env": env_name,
        "substeps_per_step": nsub,
        "control_hz": base.control_hz,
        "steps_per_rep": steps,
        "reps": reps,
        "steps_per_s_median": med,
        "steps_per_s_all": results,
        "state_env_over_raw": med["state"] / med["raw_mj_step"],
        "env_overhead_fraction": 1.0 - med["state"] / med["raw_mj_step"],
        "target": "env adds <= 10% over raw physics for state-only steps",
        "machine": machine_info(),
    }


def check_flags(args) -> list[int]:
    """Validate the flags before building envs (bad numbers name their flag); returns the sizes."""
    for flag, value in (("--steps", args.steps), ("--reps", args.reps)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    try:
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
    bad = [s for s in sizes if s < 1]
    if bad:
        raise ValueError(f"--sizes must be >= 1, got {args.sizes!r}")
    return sizes


def run(args) -> int:
    sizes = check_flags(args)
    print(f"bench env: {args.env} vs a raw mujoco.mj_step loop, {args.reps} reps x {args.steps} steps, cameras 0/1/2 "
          f"at {', '.join(map(str, sizes))} px -> {args.out}", flush=True)
    result = bench_env(args.env, steps=args.steps, reps=args.reps, sizes=sizes)
    path = write_json(result, args.out)
    med = result["steps_per_s_median"]
    for k, v in med.items():
        print(f"{k:>14}: {v:9.0f} steps/s")
    print(f"env/raw (state only): {result['state_env_over_raw']:.3f}  "
          f"(overhead {100 * result['env_overhead_fraction']:.1f}%)  -> {path}")
    return 0
