"""The robot config: what an action in [-1, 1] means on a given robot, and its limits.

Sim and real load the same dataclass, so a policy sees the same action semantics on both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robolearn.config_io import load_yaml


@dataclass
class RobotConfig:
    name: str = "sim_arm"
    joint_names: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
    # Defaults describe robolearn's simulated arm (robolearn/sim/arm.py).
    joint_lower: tuple[float, ...] = (-2.9, -1.8, -2.9, 0.0, -2.9, -0.5, -2.9)
    joint_upper: tuple[float, ...] = (2.9, 1.8, 2.9, 2.9, 2.9, 3.0, 2.9)
    gripper_joint: str = "finger"
    control_hz: float = 20.0
    # One action unit (1.0) moves the end effector this far per env step.
    pos_scale: float = 0.02  # metres
    rot_scale: float = 0.1  # radians
    # The commanded end-effector target is clipped to this box (metres, robot base frame).
    workspace_low: tuple[float, float, float] = (0.3, -0.3, 0.025)
    workspace_high: tuple[float, float, float] = (0.7, 0.3, 0.4)
    # Out-of-range actions: clip (True) or raise (False). NaN and wrong shapes always raise.
    clip_actions: bool = True
    # --- deployment (robolearn serve / sim-robot): rates, topics, safety ---------------------------
    command_hz: float = 100.0  # controller-loop rate; a whole multiple of control_hz (the policy rate)
    action_mode: str = "ee_delta"  # how an action becomes joint targets: ee_delta | joint_position
    kinematics: str = ""  # env whose MuJoCo model gives FK/IK and observations (e.g. sim/peg_insert)
    command_interface: str = "trajectory"  # trajectory (JointTrajectoryController) | forward (ForwardCommandController)
    command_gripper: bool = True  # append gripper_joint (command in [-1, 1]) to every command
    gripper_state_joints: tuple[str, ...] = ()  # finger joints in /joint_states; opening = mean / gripper_max_position
    gripper_max_position: float = 0.04
    joint_states_topic: str = "/joint_states"
    trajectory_topic: str = "/joint_trajectory_controller/joint_trajectory"
    forward_topic: str = "/forward_position_controller/commands"
    enable_topic: str = "/robolearn/enable"
    estop_topic: str = "/robolearn/estop"
    object_pose_topic: str = ""  # geometry_msgs/PoseStamped of the task object ("" = none)
    cameras: tuple[str, ...] = ()
    image_topic: str = "/camera/{camera}/image_raw"  # sensor_msgs/Image ({camera} is replaced); a topic
    # ending in /compressed (e.g. /camera/{camera}/image_raw/compressed) is read as CompressedImage
    max_joint_velocity: float = 1.0  # rad/s: the per-tick rate limit is this / command_hz
    joint_margin: float = 0.0  # rad kept away from the joint limits
    stale_periods: float = 3.0  # watchdog: hold when the newest joint state is older than this many periods
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.joint_names = tuple(self.joint_names)
        n = len(self.joint_names)
        if len(self.joint_lower) != n or len(self.joint_upper) != n:
            raise ValueError(f"robot {self.name!r}: joint limits must have {n} entries (one per joint)")
        if any(lo >= hi for lo, hi in zip(self.joint_lower, self.joint_upper)):
            raise ValueError(f"robot {self.name!r}: every joint_lower must be < joint_upper")
        if self.control_hz <= 0:
            raise ValueError(f"robot {self.name!r}: control_hz must be positive, got {self.control_hz}")
        if self.pos_scale <= 0 or self.rot_scale <= 0:
            raise ValueError(f"robot {self.name!r}: pos_scale and rot_scale must be positive")
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ValueError(f"robot {self.name!r}: workspace_low/high must be xyz triples")
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(f"robot {self.name!r}: workspace_low must be < workspace_high on every axis")
        self.workspace_low = tuple(float(v) for v in self.workspace_low)
        self.workspace_high = tuple(float(v) for v in self.workspace_high)
        self._validate_deploy()

    def _validate_deploy(self) -> None:
        where = f"robot {self.name!r}"
        ratio = self.command_hz / self.control_hz if self.command_hz > 0 else 0.0
        if self.command_hz <= 0 or abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f"{where}: command_hz ({self.command_hz}) must be a positive whole multiple of "
                             f"control_hz ({self.control_hz})")
        if self.action_mode not in ("ee_delta", "joint_position"):
            raise ValueError(f"{where}: action_mode must be 'ee_delta' or 'joint_position', got {self.action_mode!r}")
        if self.command_interface not in ("trajectory", "forward"):
            raise ValueError(f"{where}: command_interface must be 'trajectory' or 'forward', got {self.command_interface!r}")
        for key in ("joint_states_topic", "trajectory_topic", "forward_topic", "enable_topic", "estop_topic",
                    "object_pose_topic", "image_topic"):
            topic = getattr(self, key)
            if topic and not topic.startswith("/"):
                raise ValueError(f"{where}: {key} must be an absolute ROS topic name, got {topic!r}")
        self.gripper_state_joints = tuple(self.gripper_state_joints)
        self.cameras = tuple(self.cameras)
        if self.gripper_max_position <= 0 or self.max_joint_velocity <= 0 or self.stale_periods <= 0:
            raise ValueError(f"{where}: gripper_max_position, max_joint_velocity and stale_periods must be positive")
        if self.joint_margin < 0:
            raise ValueError(f"{where}: joint_margin must be >= 0")

    @property
    def command_joint_names(self) -> tuple[str, ...]:
        """Joint names of every outgoing command (the arm, then the gripper channel when commanded)."""
        return self.joint_names + ((self.gripper_joint,) if self.command_gripper and self.gripper_joint else ())

    def clip_to_workspace(self, pos: np.ndarray) -> np.ndarray:
        return np.clip(pos, self.workspace_low, self.workspace_high)

    @classmethod
    def load(cls, path: str | Path) -> "RobotConfig":
        """Load a robot config from a YAML path or a shipped name (``sim_arm``, ``franka_fr3``): see resolve_robot."""
        return load_yaml(cls, resolve_robot(path))


# The robot configs shipped inside the package, so `--robot sim_arm` works from any folder. The
# top-level hardware/ folder of the repository is the editable copy a user points to by path; a test
# keeps the two identical.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def shipped_robots() -> list[str]:
    """Names of the robot configs shipped with the package (file stems of configs/*.yaml)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_robot(robot: str | Path) -> Path:
    """``--robot`` as a path (absolute or relative to the cwd) or a bare shipped name.

    Why: the old default ``hardware/sim_arm.yaml`` only existed relative to the repository, so
    ``sim-robot`` / ``serve`` failed when run from any other folder. An existing file always wins, so a
    user's edited copy is used when pointed to; a bare name (no folder, with or without ``.yaml``) falls
    back to the shipped config, and so does ``hardware/NAME.yaml`` (the README's repository path) when
    no such file is in the cwd; otherwise the error names the path and lists the shipped names.
    """
    path = Path(robot)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / (path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml")
    if (len(path.parts) == 1 or str(path) == f"hardware/{path.name}") and shipped.is_file():
        return shipped
    raise FileNotFoundError(f"robot config {str(robot)!r} not found (not a file; shipped robots: "
                            f"{', '.join(shipped_robots())})")
