"""The ``robolearn`` command.

Every subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
this table maps command words to those modules, which are imported only when used so that
``robolearn --help`` stays fast and one broken area cannot take the whole CLI down.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

import robolearn  # noqa: F401  (sets MUJOCO_GL before anything imports mujoco)

COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("envs",): ("robolearn.envs.list_cmd", "list the registered envs"),
    ("collect",): ("robolearn.train.collect_cmd", "record episodes (scripted expert or policy) into an episode store"),
    ("record",): ("robolearn.train.record_cmd", "teleoperated demos (keyboard, SpaceMouse, gamepad) into an episode store"),
    ("data", "info"): ("robolearn.data.info_cmd", "summarise an episode store: episodes, steps, success, keys"),
    ("data", "export"): ("robolearn.data.export_cmd", "export an episode store to the LeRobotDataset layout"),
    ("data", "import"): ("robolearn.data.import_cmd", "import a LeRobotDataset v3.0 folder into an episode store"),
    ("demo",): ("robolearn.train.demo_cmd", "the main job: demos, videos and the pipeline end to end"),
    ("train", "bc"): ("robolearn.train.bc_cmd", "behaviour cloning of a diffusion / consistency policy"),
    ("train", "rl"): ("robolearn.train.rl_cmd", "off-policy RL from demos plus online data"),
    ("distill",): ("robolearn.train.distill_cmd", "distil a diffusion teacher into a one-step consistency policy"),
    ("eval",): ("robolearn.train.eval_cmd", "evaluate a checkpoint in sim: success rate, Wilson CI, videos"),
    ("plot",): ("robolearn.train.plot_cmd", "plot learning curves from run logs"),
    ("experiment", "compare"): ("robolearn.train.experiment_cmd",
                                "BC vs RLPD vs residual vs EXPO vs ConRFT from one base per seed: table + curve"),
    ("serve",): ("robolearn.deploy.serve_cmd", "serve a policy on the robot's controller loop (DDS or rclpy)"),
    ("sim-robot",): ("robolearn.deploy.sim_robot_cmd", "run a MuJoCo task as a ros2_control robot over DDS"),
    ("robot",): ("robolearn.deploy.robot_cmd", "enable | disable | estop | release a running serve over DDS"),
    ("bench", "env"): ("robolearn.bench.env_bench", "env steps/s vs raw MuJoCo physics"),
    ("bench", "policy"): ("robolearn.bench.policy_bench", "policy inference latency"),
    ("bench", "learner"): ("robolearn.bench.learner_bench", "RL learner updates/s and FLOP rate"),
    ("bench", "loop"): ("robolearn.bench.loop_bench", "controller loop jitter and latency"),
    ("bench", "record"): ("robolearn.bench.record_bench", "record loop jitter, missed ticks, key-to-command latency"),
}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robolearn", description=robolearn.__doc__)
    parser.add_argument("--version", action="version", version=f"robolearn {robolearn.__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for words, (module, help_text) in COMMANDS.items():
        if not _available(module):
            continue
        target = subs
        for depth, word in enumerate(words[:-1]):
            key = " ".join(words[: depth + 1])
            if key not in groups:
                group_parser = target.add_parser(word, help=f"{word} commands")
                groups[key] = group_parser.add_subparsers(dest=f"sub{depth}", metavar="SUBCOMMAND")
                group_parser.set_defaults(_group_parser=group_parser)
            target = groups[key]
        sub = target.add_parser(words[-1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        if _wants(words):
            importlib.import_module(module).add_arguments(sub)
    return parser


_REQUESTED: tuple[str, ...] = ()


def _wants(words: tuple[str, ...]) -> bool:
    """Only the requested command's module is imported to add its arguments."""
    return _REQUESTED[: len(words)] == words


def main(argv: list[str] | None = None) -> int:
    global _REQUESTED
    argv = list(sys.argv[1:] if argv is None else argv)
    _REQUESTED = tuple(a for a in argv if not a.startswith("-"))
    parser = build_parser()
    args = parser.parse_args(argv)
    module = getattr(args, "_module", None)
    if module is None:
        (getattr(args, "_group_parser", None) or parser).print_help()
        return 2
    try:
        result = importlib.import_module(module).run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # Bad input from the user: one clear line, not a traceback.
        print(f"robolearn: error: {exc}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
