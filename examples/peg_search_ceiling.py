"""What can a policy that sees only the observation reach on sim/peg_insert? Two hand-written controllers.

    python examples/peg_search_ceiling.py [--episodes 100] [--json]

Both read nothing but the observation vector (the hand pose and the *observed* hole pose, whose x/y
carries the per-episode calibration error) plus one tool constant, the peg tip's offset from the hand.
Both are memoryless: the action depends on the current observation only, as a state-based RL actor's does.

- ``aim``: hover over the observed hole, aligned, then go straight down. The best a policy that trusts
  the observation can do: it lands on the rim whenever the calibration error exceeds the clearance.
- ``search``: the same, but on the rim it lifts and kicks sideways by a random ~1.5 mm, then goes straight
  down from wherever it is (its height and its offset from the observed hole are its phase, so it needs
  no memory). A stochastic memoryless policy, which is what the refinement methods' actors are.

Why this matters (docs/results_refine.md): the refinement methods' target on peg_insert is >= 95%. The
first controller bounds what precise aiming alone gives; the second shows that >= 95% is reachable by a
policy of the same form as the learned ones, so the gap is in what RL discovers, not in what it can see.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import robolearn
from robolearn.sim.experts import _wrap_angle, tool_yaw
from robolearn.train.evaluate import wilson_interval

KICK_STD = 0.0015  # m: the sideways kick after landing on the rim (about the calibration error)
LIFT = 0.008       # m: how far the kick lifts the peg off the rim
NEAR = 0.0045      # m: within this of the observed hole's axis the peg goes straight down


def observed(obs: dict, layout: list[tuple[str, int]]) -> dict[str, np.ndarray]:
    """Split the flat state vector by the env's ``state_layout``."""
    out, i = {}, 0
    for name, size in layout:
        out[name] = np.asarray(obs["state"][i:i + size], np.float64)
        i += size
    return out


def act(s: dict[str, np.ndarray], tip_offset: np.ndarray, pos_scale: float, rot_scale: float,
        kick: float, rng: np.random.Generator) -> np.ndarray:
    """One action from one observation; ``kick`` 0 is the ``aim`` controller."""
    pos, hole = s["ee_pos"], s["hole_pos"]
    hole_yaw = _wrap_angle(2 * np.arctan2(s["hole_quat"][3], s["hole_quat"][0]), np.pi / 2)
    tip_z = pos[2] + tip_offset[2]
    hover = hole + [0.0, 0.0, 0.012] - tip_offset
    offset = (pos - hover)[:2]
    if np.linalg.norm(offset) > NEAR:                      # away from the hole: go over it
        goal = hover
    elif kick > 0 and -0.004 < tip_z - hole[2] < 0.0015:   # stopped on the rim: lift and kick
        goal = pos + np.r_[rng.normal(0.0, kick, 2), LIFT]
    elif kick > 0:                                         # straight down from wherever it is
        goal = np.array([pos[0], pos[1], hole[2] - 0.045 - tip_offset[2]])
    else:                                                  # aim: on the observed axis, down
        goal = np.array([hover[0], hover[1], hole[2] - 0.045 - tip_offset[2]])
    action = np.zeros(7, np.float32)
    action[:3] = np.clip((goal - pos) / pos_scale, -1.0, 1.0)
    action[2] = max(action[2], -0.5)  # a careful descent, as the expert's
    action[5] = np.clip(_wrap_angle(hole_yaw - tool_yaw(s["ee_quat"]), np.pi / 2) / rot_scale, -1.0, 1.0)
    action[6] = 1.0
    return action


def run(controller: str, episodes: int, seed: int = 1_000_000_000) -> dict:
    env = robolearn.make("sim/peg_insert")
    u = env.unwrapped
    kick = KICK_STD if controller == "search" else 0.0
    successes, lengths = 0, []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        tip_offset = u.data.site_xpos[u.task.tip] - u.robot.ee_pose()[0]  # the tool constant, measured once
        rng = np.random.default_rng(k)
        for t in range(u.task.config.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(
                act(observed(obs, u.state_layout), tip_offset, u.robot_config.pos_scale,
                    u.robot_config.rot_scale, kick, rng))
            if terminated or truncated:
                break
        successes += bool(info.get("success", False))
        lengths.append(t + 1)
    env.close()
    lo, hi = wilson_interval(successes, episodes)
    return {"controller": controller, "episodes": episodes, "successes": successes,
            "success_rate": successes / episodes, "ci95": [lo, hi], "mean_length": float(np.mean(lengths))}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="one JSON list on stdout")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    results = [run(name, args.episodes) for name in ("aim", "search")]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['controller']:>6}: {r['successes']}/{r['episodes']} = {r['success_rate']:.0%} "
                  f"(95% CI {r['ci95'][0]:.0%}-{r['ci95'][1]:.0%}), mean length {r['mean_length']:.0f} steps")
    return results


if __name__ == "__main__":
    main()
