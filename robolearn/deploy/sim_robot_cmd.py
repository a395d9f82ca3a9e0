"""``robolearn sim-robot --env sim/peg_insert``: a MuJoCo task as a ros2_control robot over DDS.

Besides the robot's own topics (robolearn.deploy.sim_robot), sim-robot speaks the two episode topics a
``real/`` env (robolearn.deploy.real_env) needs to run episodes against it as against a real cell:
- ``--success-topic`` (std_msgs/Bool, every tick): the task's success right now, what a success
  detector publishes for a real cell;
- ``--reset-topic`` (std_msgs/Float64MultiArray ``[request_id, seed]``, seed < 0 = no seed): reset the
  scene as ``env.reset(seed=...)`` does (a person re-places the objects in a real cell), answered on
  ``--reset-done-topic`` with ``[request_id, stamp]``, the wall-clock time of the reset, so the env can
  tell observations of the new episode from the old one's.
"""
from __future__ import annotations

import argparse
import threading
import time

import numpy as np
import yaml

# The episode topics' defaults; real_env uses them for robot configs whose kinematics is a sim env.
SUCCESS_TOPIC = "/robolearn/success"
RESET_TOPIC = "/robolearn/reset"
RESET_DONE_TOPIC = "/robolearn/reset_done"


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
    p.add_argument("--success-topic", default=SUCCESS_TOPIC,
                   help="publish the task's success here every tick (std_msgs/Bool; '' = off)")
    p.add_argument("--reset-topic", default=RESET_TOPIC,
                   help="reset the scene on [request_id, seed] (std_msgs/Float64MultiArray; '' = off)")
    p.add_argument("--reset-done-topic", default=RESET_DONE_TOPIC,
                   help="answer each reset with [request_id, stamp] (std_msgs/Float64MultiArray)")


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
    from robolearn.hardware.robot_config import RobotConfig

    cfg = RobotConfig.load(args.robot)
    _sigterm_as_interrupt()
    bus = DdsBus(args.domain, loopback=not args.no_loopback)
    robot = episodic_sim_robot(args.env, cfg, rate_hz=args.rate, cameras=tuple(c for c in args.cameras.split(",") if c),
                               image_hz=args.image_hz, image_size=args.image_size, seed=args.seed,
                               overrides=parse_overrides(args.set), bus=bus, success_topic=args.success_topic,
                               reset_topic=args.reset_topic, reset_done_topic=args.reset_done_topic)
    print(f"sim-robot: {args.env} on DDS domain {args.domain}, joint_states {cfg.joint_states_topic}, "
          f"commands {cfg.trajectory_topic} | {cfg.forward_topic}", flush=True)
    status = (lambda s: write_json_atomic(args.status_file, s)) if args.status_file else None
    try:
        robot.run(args.seconds, on_status=status)
    except KeyboardInterrupt:
        pass
    s = robot.status()
    print(f"sim-robot: {s['ticks']} ticks, commands {s['commands']}, dropped {s['dropped']}, "
          f"success {s['ever_success']}, resets {s.get('resets', 0)}", flush=True)
    return 0


def _sigterm_as_interrupt() -> None:
    """SIGTERM (systemd, launch, a test harness) shuts down like Ctrl-C: stats printed, children stopped."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


def episodic_sim_robot(env_name: str, cfg, *, success_topic: str = SUCCESS_TOPIC, reset_topic: str = RESET_TOPIC,
                       reset_done_topic: str = RESET_DONE_TOPIC, **kwargs):
    """A SimRobot that also publishes its task's success and resets its scene on request (see the module doc).

    Why a subclass made here: the episode topics are what ``real/<robot>`` envs need from a simulated
    cell; the robot itself (sim_robot.SimRobot) stays the plain ros2_control stand-in other tests drive.
    """
    from robolearn.deploy.sim_robot import SimRobot

    class EpisodicSimRobot(SimRobot):
        def __init__(self):
            super().__init__(env_name, cfg, **kwargs)
            from robolearn.deploy import ros_msgs as M

            self.resets = 0
            self._pending_reset: tuple[float, int | None] | None = None
            self._last_request: float | None = None  # a request sent again is applied once, answered again
            self._last_answer: list[float] | None = None
            self._answer_again = False
            self._reset_lock = threading.Lock()
            self.success_writer = self.bus.writer(success_topic, M.Bool) if success_topic else None
            self.reset_done_writer = None
            if reset_topic:
                self.reset_done_writer = self.bus.writer(reset_done_topic, M.Float64MultiArray)
                self.bus.reader(reset_topic, M.Float64MultiArray, self.on_reset)

        def on_reset(self, msg) -> None:
            data = np.asarray(msg.data, np.float64)
            if data.shape != (2,) or not np.all(np.isfinite(data)):
                raise ValueError(f"reset request: expected [request_id, seed], got {list(msg.data)}")
            seed = int(data[1]) if data[1] >= 0 else None
            with self._reset_lock:  # applied by the physics loop at its next tick, never mid-step
                if float(data[0]) != self._last_request:
                    self._last_request = float(data[0])
                    self._pending_reset = (float(data[0]), seed)
                else:
                    self._answer_again = True

        def reset_scene(self, seed: int | None) -> None:
            """The scene as ``env.reset(seed)`` makes it; the controllers hold the new pose."""
            with self._lock:
                self.env.reset(seed=seed)
                self.robot.set_joint_mode()
                self.q0 = self.robot.qpos()
                grip0 = 1.0 - 2.0 * self.robot.gripper_opening()
                self.target = np.concatenate([self.q0[self._arm_idx], [grip0] if len(self.joints) > self.n_arm else []])
                self._traj = None
            self.resets += 1

        def tick(self, now: float) -> None:
            with self._reset_lock:
                pending, self._pending_reset = self._pending_reset, None
                again, self._answer_again = self._answer_again and self._last_answer is not None, False
            if pending is not None:
                self.reset_scene(pending[1])
                self._last_answer = [pending[0], time.time()]
            if pending is not None or again:
                self.reset_done_writer.write(self.msgs.Float64MultiArray(data=list(self._last_answer)))
            super().tick(now)
            if self.success_writer is not None:
                self.success_writer.write(self.msgs.Bool(data=bool(self.u.task.success(self.u))))

        def status(self) -> dict:
            s = super().status()
            s["resets"] = self.resets
            return s

    return EpisodicSimRobot()
