"""The robot config: what an action in [-1, 1] means on a given robot, and its limits.

Sim and real load the same dataclass, so a policy sees the same action semantics on both.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robolearn.config_io import ConfigError, from_dict, load_yaml

_PI_TERM = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)?\s*\*?\s*pi\s*(?:/\s*(\d+(?:\.\d*)?))?\s*$")


def _number(value, where: str) -> float:
    """A float from YAML, where angles may be written as the published tables write them (``pi/2``,
    ``-pi/4``, ``2*pi``): typing 1.5707963 by hand is how a digit gets lost."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        out = float(value)
    elif isinstance(value, str):
        m = _PI_TERM.match(value)
        if m:
            sign, factor, divisor = m.groups()
            out = (-1.0 if sign == "-" else 1.0) * float(factor or 1.0) * math.pi / float(divisor or 1.0)
        else:
            try:
                out = float(value)
            except ValueError:
                raise ValueError(f"{where}: expected a number or a multiple of pi (e.g. -pi/2), got {value!r}") from None
    else:
        raise ValueError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(out):
        raise ValueError(f"{where}: must be finite, got {value!r}")
    return out


def _numbers(values, where: str, length: int | None = None) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{where}: expected a list of numbers, got {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"{where}: expected {length} numbers, got {len(values)}")
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(values))


@dataclass
class KinematicsConfig:
    """A serial arm's kinematic parameters as its manufacturer publishes them: one DH row per joint.

    Why a DH table and not a URDF: Franka and Universal Robots publish exactly these tables, so the
    config can be checked line by line against the cited page, and FK/IK (robolearn.hardware.kinematics)
    need nothing but numpy. Revolute joints only; ``theta`` of a row is ``q + theta_offset``.

    ``convention``: ``standard`` (Denavit-Hartenberg: Rz(theta) Tz(d) Tx(a) Rx(alpha), UR's tables) or
    ``modified`` (Craig: Rx(alpha) Tx(a) Rz(theta) Tz(d), Franka's tables; a and alpha of row i are
    then a_{i-1}, alpha_{i-1}). ``flange``: a fixed last row [a, d, alpha, theta] in the same convention
    (Franka's "Flange" row; zeros when the last joint's frame already is the flange, as for UR).
    ``base``: the DH base frame in the frame actions are expressed in, ``tool``: the end effector
    (TCP) in the flange frame, both [x, y, z, roll, pitch, yaw] (metres; radians, URDF's fixed-axis
    roll-pitch-yaw). Angles may be written as ``pi/2``.
    """

    convention: str = "standard"
    a: tuple[float, ...] = ()
    d: tuple[float, ...] = ()
    alpha: tuple[float, ...] = ()
    theta_offset: tuple[float, ...] = ()  # empty = all zero
    flange: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    base: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    tool: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        where = "kinematics"
        if self.convention not in ("standard", "modified"):
            raise ValueError(f"{where}.convention: must be 'standard' (DH) or 'modified' (Craig), "
                             f"got {self.convention!r}")
        self.a = _numbers(self.a, f"{where}.a")
        n = len(self.a)
        if n == 0:
            raise ValueError(f"{where}.a: the DH table has no rows (one entry per joint expected)")
        self.d = _numbers(self.d, f"{where}.d", n)
        self.alpha = _numbers(self.alpha, f"{where}.alpha", n)
        self.theta_offset = _numbers(self.theta_offset or (0.0,) * n, f"{where}.theta_offset", n)
        self.flange = _numbers(self.flange, f"{where}.flange ([a, d, alpha, theta])", 4)
        self.base = _numbers(self.base, f"{where}.base ([x, y, z, roll, pitch, yaw])", 6)
        self.tool = _numbers(self.tool, f"{where}.tool ([x, y, z, roll, pitch, yaw])", 6)

    @property
    def n_joints(self) -> int:
        return len(self.a)


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
    # Where FK/IK come from: a sim env whose MuJoCo model gives FK/IK and observations (e.g.
    # sim/peg_insert), or a mapping of the arm's published DH table (KinematicsConfig; a real arm's
    # FK/IK is robolearn.hardware.kinematics.SerialArm.from_robot_config). "" = none.
    kinematics: str | KinematicsConfig = ""
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
        where = f"robot {self.name!r}"
        self.joint_names = tuple(self.joint_names)
        n = len(self.joint_names)
        if len(self.joint_lower) != n or len(self.joint_upper) != n:
            raise ValueError(f"{where}: joint_lower/joint_upper must have {n} entries (one per joint in "
                             f"joint_names), got {len(self.joint_lower)} and {len(self.joint_upper)}")
        self.joint_lower = _numbers(self.joint_lower, "joint_lower")
        self.joint_upper = _numbers(self.joint_upper, "joint_upper")
        for i, (lo, hi) in enumerate(zip(self.joint_lower, self.joint_upper)):
            if lo >= hi:
                raise ValueError(f"{where}: joint_lower[{i}] ({self.joint_names[i]}) = {lo} must be < "
                                 f"joint_upper[{i}] = {hi}")
        if self.control_hz <= 0:
            raise ValueError(f"{where}: control_hz must be positive, got {self.control_hz}")
        if self.pos_scale <= 0 or self.rot_scale <= 0:
            raise ValueError(f"{where}: pos_scale and rot_scale must be positive")
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ValueError(f"{where}: workspace_low/high must be xyz triples")
        self.workspace_low = _numbers(self.workspace_low, "workspace_low")
        self.workspace_high = _numbers(self.workspace_high, "workspace_high")
        for i, (lo, hi) in enumerate(zip(self.workspace_low, self.workspace_high)):
            if lo >= hi:
                raise ValueError(f"{where}: workspace_low[{i}] ({'xyz'[i]}) = {lo} must be < "
                                 f"workspace_high[{i}] = {hi}")
        self._validate_kinematics()
        self._validate_deploy()

    def _validate_kinematics(self) -> None:
        where = f"robot {self.name!r}"
        kin = self.kinematics
        if kin is None:
            kin = ""
        if isinstance(kin, dict):
            kin = from_dict(KinematicsConfig, kin, where="kinematics")
        if not isinstance(kin, (str, KinematicsConfig)):
            raise ValueError(f"{where}: kinematics must be a sim env name or a mapping of DH parameters, "
                             f"got {type(kin).__name__}")
        if isinstance(kin, KinematicsConfig) and kin.n_joints != len(self.joint_names):
            raise ValueError(f"{where}: kinematics has {kin.n_joints} DH rows but joint_names has "
                             f"{len(self.joint_names)} joints; they must match one to one")
        self.kinematics = kin

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
    def arm_kinematics(self) -> KinematicsConfig | None:
        """The DH parameters when ``kinematics`` is a table (a real arm), None when it names a sim env."""
        return self.kinematics if isinstance(self.kinematics, KinematicsConfig) else None

    @property
    def kinematics_env(self) -> str:
        """The sim env whose MuJoCo model gives FK/IK, "" when ``kinematics`` is a DH table or unset."""
        return self.kinematics if isinstance(self.kinematics, str) else ""

    @property
    def command_joint_names(self) -> tuple[str, ...]:
        """Joint names of every outgoing command (the arm, then the gripper channel when commanded)."""
        return self.joint_names + ((self.gripper_joint,) if self.command_gripper and self.gripper_joint else ())

    def clip_to_workspace(self, pos: np.ndarray) -> np.ndarray:
        return np.clip(pos, self.workspace_low, self.workspace_high)

    @classmethod
    def load(cls, path: str | Path) -> "RobotConfig":
        """Load a robot config from a YAML path or a shipped name (``sim_arm``, ``franka_fr3``): see resolve_robot.

        Every validation error names the file, so a bad value in an edited copy says which copy.
        """
        resolved = resolve_robot(path)
        try:
            return load_yaml(cls, resolved)
        except ValueError as exc:
            if str(resolved) in str(exc):
                raise
            raise ConfigError(f"{resolved}: {exc}") from None


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
