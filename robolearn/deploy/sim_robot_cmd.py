"""``robolearn sim-robot --env sim/peg_insert``: a MuJoCo task as a ros2_control robot over DDS."""
from __future__ import annotations

import argparse

import yaml


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="sim/peg_insert", help="registered sim task")
    p.add_argument("--robot", default="sim_arm",
                   help="robot config (topics, joint names): a shipped name (sim_arm, ...) or a YAML path")
    p.add_argument("--domain", type=int, default=0, help="DDS domain id")
    p.add_argument("--rate", type=float, default=100.0, help="controller / joint_states rate (Hz)")
    p.add_argument("--cameras", default="", help="comma-separated cameras to publish as sensor_msgs/Image")
    p.add_argument("--image-hz", type=float, default=10.0)
    p.add_argument("--image-size", type=int, default=84)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="task config override (YAML value), e.g. --set hole_yaw=0.0")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = until Ctrl-C)")
    p.add_argument("--status-file", default="", help="write a JSON status here every 0.25 s (atomic)")
    p.add_argument("--no-loopback", action="store_true", help="do not confine DDS to loopback")


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def run(args) -> int:
    from robolearn.deploy.dds import DdsBus
    from robolearn.deploy.dds_node import write_json_atomic
    from robolearn.deploy.sim_robot import SimRobot
    from robolearn.hardware.robot_config import RobotConfig

    cfg = RobotConfig.load(args.robot)
    _sigterm_as_interrupt()
    bus = DdsBus(args.domain, loopback=not args.no_loopback)
    robot = SimRobot(args.env, cfg, rate_hz=args.rate, cameras=tuple(c for c in args.cameras.split(",") if c),
                     image_hz=args.image_hz, image_size=args.image_size, seed=args.seed,
                     overrides=parse_overrides(args.set), bus=bus)
    print(f"sim-robot: {args.env} on DDS domain {args.domain}, joint_states {cfg.joint_states_topic}, "
          f"commands {cfg.trajectory_topic} | {cfg.forward_topic}", flush=True)
    status = (lambda s: write_json_atomic(args.status_file, s)) if args.status_file else None
    try:
        robot.run(args.seconds, on_status=status)
    except KeyboardInterrupt:
        pass
    s = robot.status()
    print(f"sim-robot: {s['ticks']} ticks, commands {s['commands']}, dropped {s['dropped']}, "
          f"success {s['ever_success']}", flush=True)
    return 0


def _sigterm_as_interrupt() -> None:
    """SIGTERM (systemd, launch, a test harness) shuts down like Ctrl-C: stats printed, children stopped."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
