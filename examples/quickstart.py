"""robolearn quickstart: demos -> a consistency policy -> its success rate -> one action, in about a minute.

    python examples/quickstart.py [--out FOLDER] [--steps 300]

Runs from any folder (recipes and task configs ship inside the package). Without ``--out`` everything
goes into a temporary folder that is deleted at the end. A few hundred training steps on 5 demos show
the whole flow, not a good policy: for that use ~20 demos and the recipe's own steps (drop ``steps=``).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import robolearn


def main(out: Path, steps: int) -> dict:
    # 1. Five demonstrations from the scripted expert into an episode store.
    demos = robolearn.collect("sim/pick_cube", out / "demos", episodes=5, source="expert")

    # 2. A consistency policy (one network call per action chunk) trained on them; the shipped
    #    recipe by name, a smaller batch so a few hundred steps finish quickly on a CPU.
    bc = robolearn.train_bc(demos["out"], out / "bc", recipe="consistency", steps=steps,
                            overrides={"train": {"batch_size": 32, "warmup_steps": 50}})

    # 3. Its success rate over 3 seeded episodes on the env it was trained on (recorded in the checkpoint).
    result = robolearn.evaluate(bc["checkpoint"], episodes=3, save_to=out / "eval.json")

    # 4. Load it and act once, as a robot loop would.
    policy = robolearn.load_policy(bc["checkpoint"])
    env = robolearn.make("sim/pick_cube", **policy.meta.get("env_kwargs", {}))
    obs, _ = env.reset(seed=0)
    policy.reset()  # at every episode start: clears the observation history and the action-chunk queue
    action = policy.select_action(obs)
    env.step(action)
    env.close()
    print(f"quickstart: {demos['store_episodes']} demos -> {bc['checkpoint']} ({bc['steps']} steps, "
          f"loss {bc['first_loss']:.3f} -> {bc['final_loss']:.3f}) -> success {result['success_rate']:.0%} "
          f"over {result['episodes']} episodes; first action {[round(float(a), 3) for a in action]}")
    return {"demos": demos["out"], "checkpoint": bc["checkpoint"], "eval": result["result_file"],
            "action": action.tolist()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="keep the demos, run and eval here (default: a temp folder)")
    parser.add_argument("--steps", type=int, default=300, help="BC training steps")
    args = parser.parse_args()
    if args.out:
        main(Path(args.out), args.steps)
    else:
        with tempfile.TemporaryDirectory(prefix="robolearn-quickstart-") as tmp:
            main(Path(tmp), args.steps)
