"""A real robot as a Gymnasium env: ``robolearn.make("real/franka_fr3")``, ``real/ur5e``, ``real/sim_arm``
(``robolearn sim-robot`` driven as a real robot) or ``real/<path to a robot config>``.

The env keeps the sim envs' contract (robolearn.envs.api): the action is the 7-D end-effector delta
``[dx, dy, dz, drx, dry, drz, gripper]`` in [-1, 1] scaled by the robot config, the observation is
``{"state": [ee_pos, ee_quat, gripper(, object pose)], "images": {...}}``, ``info["success"]`` is always
there. So a policy, a scripted expert or a teleop device drives a real arm exactly as it drives the sim.

Why the deploy layer: a step goes through the same parts ``robolearn serve`` uses, not a copy of them -
the action becomes joint targets by the deploy mapper (action_map.EEDeltaMapper: deltas on the last
commanded pose, at most two steps ahead of the measured one, clamped into the workspace, IK from the
config's kinematics), and the controller loop (loop.ControllerLoop, built by node.NodeCore) interpolates
them at ``command_hz`` through the safety filter (joint limits, rate limit, stale-state hold, e-stop)
onto the ROS 2 controller's topic over DDS (dds_node.DdsNode). Only the clock differs: ``serve`` runs
the loop in its own thread and asks the policy for actions; here ``step()`` runs the loop's ticks for
one control period (``command_hz / control_hz`` ticks on an absolute schedule, so an agent that answers
within a command period keeps the rate exactly), then waits for the end of the period and returns the
state the action led to - the sim env's step, in wall-clock time.

The observation is rebuilt from ``/joint_states`` the way ``serve`` rebuilds it: forward kinematics of
the measured joints (the config's DH table, or the sim task's MuJoCo model for a simulated arm) and the
gripper opening from the finger joints; a simulated arm adds the task object's pose from
``object_pose_topic`` (privileged state, as in sim). For ``real/sim_arm`` the env also keeps a kinematic
copy of the sim task posed from every observation (``env.task``, ``env.data``, ``env.robot``), which is
what the scripted experts read: they play the teleoperator who sees the scene.

Success comes from a std_msgs/Bool topic (``success_topic``); without one ``info["success"]`` is always
False (a warning says so once) and success is marked by a person (``robolearn record``'s keys).
Resets: with ``reset_topic`` (sim-robot) the scene is reset on request, seeded like the sim's; otherwise
the arm is driven to ``home`` (joint positions) if given, and the scene is the operator's job.

Real-env options live in the robot config under ``extra: {real_env: {...}}`` (see RealEnvConfig) and
can be overridden as ``make(...)`` keywords.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config_io import ConfigError, check_keys, from_dict
from robolearn.deploy.cameras import CameraError, CameraSpec, open_camera, square_resize
from robolearn.deploy.inference import ObservationNotReady
from robolearn.deploy.sim_robot_cmd import RESET_DONE_TOPIC, RESET_TOPIC, SUCCESS_TOPIC
from robolearn.envs.api import RobotEnv, action_space, observation_space
from robolearn.hardware.robot_config import RobotConfig, resolve_robot

ACTION_DIM = 7
CAMERA_STALE_S = 2.0  # a camera whose newest frame is older than this has stopped


class JointNamesMismatch(ConfigError):
    """The robot config's joint names are not the ones the robot publishes on /joint_states."""


class RobotStopped(RuntimeError):
    """The e-stop topic latched a stop: nothing is commanded until it is cleared."""


@dataclasses.dataclass
class RealEnvConfig:
    """A real robot env's options: ``extra.real_env`` of the robot config, then ``make()`` keywords.

    ``success_topic`` / ``reset_topic``: None = the default (sim-robot's topics when the robot config's
    kinematics is a sim env, none otherwise), "" = none. ``home``: joint positions (rad) the arm is
    driven to at each reset when there is no reset topic (() = stay). ``cameras``: names (topic cameras on
    the robot config's ``image_topic``, or entries of this mapping) or a mapping name -> CameraSpec fields
    (``source``/``width``/``height``/``fps`` for OpenCV, or ``topic``). ``task``: the sim task a
    simulated arm runs (default: the robot config's ``kinematics``); it must be the task sim-robot runs.
    ``domain``: DDS domain id (default $ROS_DOMAIN_ID, else 0). ``loopback``: keep DDS on this host
    (as ``serve``; false, or a CYCLONEDDS_URI, to reach a robot on the network).
    """

    domain: int | None = None
    loopback: bool = True
    cameras: Any = None
    image_size: int = 84
    success_topic: str | None = None
    reset_topic: str | None = None
    reset_done_topic: str = RESET_DONE_TOPIC
    home: tuple[float, ...] = ()
    home_tolerance: float = 0.02  # rad
    max_episode_steps: int = 0  # 0 = the sim task's, or 200 for a real arm
    task: str = ""
    connect_timeout: float = 10.0  # s: first joint state, object pose, camera frame, success value
    reset_timeout: float = 30.0  # s: a reset request answered / home reached

    def __post_init__(self) -> None:
        if self.domain is not None and (isinstance(self.domain, bool) or not isinstance(self.domain, int)
                                        or not 0 <= self.domain <= 232):
            raise ValueError(f"domain must be a DDS domain id in [0, 232], got {self.domain!r}")
        size = self.image_size
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 512:
            raise ValueError(f"image_size must be in [16, 512], got {self.image_size!r}")
        for key in ("success_topic", "reset_topic", "reset_done_topic"):
            topic = getattr(self, key)
            if topic and not topic.startswith("/"):
                raise ValueError(f"{key} must be an absolute ROS topic name, got {topic!r}")
        try:
            self.home = tuple(float(v) for v in self.home)
        except (TypeError, ValueError):
            raise ValueError(f"home must be a list of joint positions (rad), got {self.home!r}") from None
        if not all(np.isfinite(self.home)):
            raise ValueError(f"home must be finite joint positions, got {self.home}")
        for key in ("home_tolerance", "connect_timeout", "reset_timeout"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)!r}")
        if isinstance(self.max_episode_steps, bool) or not isinstance(self.max_episode_steps, int) \
                or self.max_episode_steps < 0:
            raise ValueError(f"max_episode_steps must be an int >= 0 (0 = default), got {self.max_episode_steps!r}")


def real_env_config(cfg: RobotConfig, path: Path, overrides: dict) -> RealEnvConfig:
    """The robot config's ``extra.real_env`` section with ``make()`` keywords on top; errors name the file."""
    section = (cfg.extra or {}).get("real_env", {}) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: extra.real_env must be a mapping, got {type(section).__name__}")
    base = from_dict(RealEnvConfig, section, where="extra.real_env", source=path)
    fields = [f.name for f in dataclasses.fields(RealEnvConfig)]
    check_keys(overrides, fields, f"make('real/{cfg.name}')", what="option")
    try:
        return dataclasses.replace(base, **overrides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"make('real/{cfg.name}'): {exc}") from None


def camera_specs(value, cfg: RobotConfig, configured: Any, path: Path) -> list[CameraSpec]:
    """Normalise ``cameras`` (None, "a,b", [names] or {name: spec}) into CameraSpecs.

    A bare name is the entry of the config's ``extra.real_env.cameras`` mapping, or else a topic camera on
    the robot config's ``image_topic``; None means every configured camera (that mapping's, then the
    robot config's ``cameras``).
    """
    table = configured if isinstance(configured, dict) else {}
    if configured is not None and not isinstance(configured, (dict, list, tuple, str)):
        raise ConfigError(f"{path}: extra.real_env.cameras must be a list of names or a mapping, got {configured!r}")
    if value is None:
        value = configured if configured is not None else list(cfg.cameras)
        if isinstance(value, dict):
            value = list(value) + [c for c in cfg.cameras if c not in value]
    if isinstance(value, str):
        value = [c.strip() for c in value.split(",") if c.strip()]
    specs = []
    if isinstance(value, dict):
        items = list(value.items())
    else:
        items = [(name, table.get(name)) for name in value]
    for name, spec in items:
        if not isinstance(name, str) or not name:
            raise ValueError(f"camera names must be non-empty strings, got {name!r}")
        if spec is None:
            spec = {"topic": cfg.image_topic.format(camera=name)}
        if isinstance(spec, CameraSpec):
            specs.append(spec)
            continue
        if not isinstance(spec, dict):
            raise ValueError(f"camera {name!r}: expected a mapping of source/topic/width/height/fps, got {spec!r}")
        specs.append(from_dict(CameraSpec, {"name": name, **spec}, where=f"camera {name!r}"))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"cameras listed twice: {names}")
    return specs


class EEStateObs:
    """A real arm's state as the sim's: [ee_pos, ee_quat, gripper opening] from forward kinematics.

    The quaternion takes the sign the sim uses (continuous around the tool-down posture, where the
    usual w >= 0 rule flips it); an arm without finger joints in /joint_states reports opening 0.
    """

    layout = [("ee_pos", 3), ("ee_quat", 4), ("gripper", 1)]

    def __init__(self, kin, gripper_joints: tuple[str, ...]):
        from robolearn.sim.robot import canonical_tool_quat

        self.kin, self.gripper_joints, self._canon = kin, tuple(gripper_joints), canonical_tool_quat

    def build(self, state) -> dict:
        pos, quat = self.kin.forward_kinematics(state.q)
        if self.gripper_joints and state.gripper is None:
            raise ObservationNotReady(f"no gripper opening: finger joints {list(self.gripper_joints)} "
                                      f"(gripper_state_joints) not in /joint_states")
        grip = 0.0 if state.gripper is None else state.gripper
        return {"state": np.concatenate([pos, self._canon(np.asarray(quat, np.float64)), [grip]]).astype(np.float32)}


class _SimTwin:
    """The sim task's model posed from observations: arm and fingers from the joints, the task object from
    its pose topic. The scripted experts read this scene as they read the sim's."""

    def __init__(self, kin):
        import mujoco

        from robolearn.sim.arm import FINGER_RANGE

        self.kin, self.env = kin, kin.env.unwrapped
        self._mj = mujoco
        self._finger_max = FINGER_RANGE[1]
        layout = self.env.state_layout
        self.body = self.adr = self.mocap = None
        if len(layout) > 3:  # the object named by the privileged layout: cube_pos -> body "cube"
            name = layout[3][0].removesuffix("_pos")
            body = mujoco.mj_name2id(self.env.model, mujoco.mjtObj.mjOBJ_BODY, name)
            if body < 0:
                raise ValueError(f"sim task {self.env.task.name}: no body {name!r} for the object pose")
            model = self.env.model
            if model.body_mocapid[body] >= 0:
                self.mocap = int(model.body_mocapid[body])
            elif model.body_jntnum[body] == 1 and model.jnt_type[model.body_jntadr[body]] == mujoco.mjtJoint.mjJNT_FREE:
                self.adr = int(model.jnt_qposadr[model.body_jntadr[body]])
            else:
                raise ValueError(f"sim task {self.env.task.name}: body {name!r} is neither mocap nor free")

    def pose(self, state) -> None:
        env, robot = self.env, self.env.robot
        with self.kin._lock:
            d = env.data
            d.qpos[robot.qpos_idx] = state.q
            if state.gripper is not None:
                d.qpos[robot.finger_qpos_idx] = state.gripper * self._finger_max
            pose = state.extras.get("object_pose")
            if pose is not None:
                if self.mocap is not None:
                    d.mocap_pos[self.mocap], d.mocap_quat[self.mocap] = pose
                elif self.adr is not None:
                    d.qpos[self.adr:self.adr + 3], d.qpos[self.adr + 3:self.adr + 7] = pose
            self._mj.mj_kinematics(env.model, d)


class RealRobotEnv(RobotEnv):
    """See the module docstring. ``robot``: a shipped robot name or a robot config path."""

    def __init__(self, robot: str | Path, **overrides):
        from robolearn.deploy import ros_msgs as M
        from robolearn.deploy.dds import DdsBus
        from robolearn.deploy.dds_node import DdsNode
        from robolearn.deploy.node import build_kinematics

        self._closed = True
        self.config_path = resolve_robot(robot)
        cfg = RobotConfig.load(self.config_path)
        cameras_kw = overrides.pop("cameras", None)
        s = self.settings = real_env_config(cfg, self.config_path, overrides)
        if s.task:
            if not cfg.kinematics_env:
                raise ConfigError(f"{self.config_path}: task={s.task!r} picks the sim task of a simulated arm "
                                  f"(a robot config whose kinematics is a sim env); {cfg.name} has a DH table")
            cfg = dataclasses.replace(cfg, kinematics=s.task)
        if cfg.kinematics == "":
            raise ConfigError(f"{self.config_path}: no kinematics: the env's end-effector delta actions need FK/IK, "
                              f"give `kinematics:` a DH table (as franka_fr3.yaml) or a sim env name")
        # The env's action is always the sim's end-effector delta, whatever action_mode `serve` uses.
        cfg = dataclasses.replace(cfg, action_mode="ee_delta", cameras=())
        self.robot_config = cfg
        self.clip_actions = cfg.clip_actions
        n = len(cfg.joint_names)
        if s.home and (len(s.home) != n or np.any(np.array(s.home) < cfg.joint_lower)
                       or np.any(np.array(s.home) > cfg.joint_upper)):
            raise ConfigError(f"{self.config_path}: extra.real_env.home must be {n} joint positions within "
                              f"joint_lower/joint_upper, got {list(s.home)}")
        self.camera_specs = camera_specs(cameras_kw, cfg, s.cameras, self.config_path)

        kin, state_obs = build_kinematics(cfg)
        self.twin = None
        if cfg.kinematics_env:
            self.twin = _SimTwin(kin)
            self.state_layout = list(self.twin.env.state_layout)
            task_cfg = self.twin.env.task.config
            default_steps, self.terminate_on_success = task_cfg.max_episode_steps, task_cfg.terminate_on_success
        else:
            state_obs = EEStateObs(kin, cfg.gripper_state_joints)
            self.state_layout = list(EEStateObs.layout)
            default_steps, self.terminate_on_success = 200, True
        self.state_obs = state_obs
        self.max_episode_steps = s.max_episode_steps or default_steps
        sim_default = bool(cfg.kinematics_env)
        self.success_topic = (SUCCESS_TOPIC if sim_default else "") if s.success_topic is None else s.success_topic
        self.reset_topic = (RESET_TOPIC if sim_default else "") if s.reset_topic is None else s.reset_topic
        self.success_source = f"topic {self.success_topic}" if self.success_topic else "none"
        if not self.success_topic:
            warnings.warn(f"real/{cfg.name}: no success topic ({self.config_path}: extra.real_env.success_topic), "
                          f"so info['success'] is always False; publish std_msgs/Bool from a success detector "
                          f"and name its topic, or mark success by hand (robolearn record)", stacklevel=3)

        self.observation_space = observation_space(sum(k for _, k in self.state_layout),
                                                   [c.name for c in self.camera_specs], s.image_size)
        self.action_space = action_space(ACTION_DIM)
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": int(cfg.control_hz)}
        self.render_mode = None

        self.cameras: dict[str, Any] = {}
        self.bus = None
        try:
            for spec in self.camera_specs:  # OpenCV cameras first: a bad one fails before anything connects
                if not spec.topic:
                    self.cameras[spec.name] = open_camera(spec)
            self.domain = s.domain if s.domain is not None else int(os.environ.get("ROS_DOMAIN_ID", "0") or 0)
            self.bus = DdsBus(self.domain, loopback=s.loopback)
            self._closed = False
            self.node = DdsNode(cfg, None, bus=self.bus, kinematics=kin, obs_builder=state_obs)
            for spec in self.camera_specs:
                if spec.topic:
                    self.cameras[spec.name] = open_camera(spec, self.bus)
        except BaseException:
            self.close()
            raise
        self.loop = self.node.loop
        self.mapper = self.loop.inference.mapper
        self.ticks_per_step = self.loop.cfg.ticks_per_step
        self._lock = threading.Lock()
        self._incoming_names: list[str] | None = None
        self._success = (False, 0)  # (latest value, messages received)
        self._reset_done: tuple[float, float, float] | None = None  # (request id, stamp, monotonic received)
        self.bus.reader(cfg.joint_states_topic, M.JointState, self._on_names)
        if self.success_topic:
            self.bus.reader(self.success_topic, M.Bool, self._on_success)
        self._reset_writer = None
        if self.reset_topic:
            self._reset_writer = self.bus.writer(self.reset_topic, M.Float64MultiArray)
            self.bus.reader(s.reset_done_topic, M.Float64MultiArray, self._on_reset_done)
        self._request = int(np.random.default_rng().integers(1, 1 << 30))
        self._steps = 0
        self._started = False
        self._next_t = time.perf_counter()
        self.late_steps = 0
        self._last_obs: dict | None = None

    # ---- DDS callbacks (Cyclone's listener thread) -------------------------------------------------
    def _on_names(self, msg) -> None:
        names = list(msg.name)
        with self._lock:
            self._incoming_names = names

    def _on_success(self, msg) -> None:
        with self._lock:
            self._success = (bool(msg.data), self._success[1] + 1)

    def _on_reset_done(self, msg) -> None:
        data = list(msg.data)
        if len(data) == 2:
            with self._lock:
                self._reset_done = (float(data[0]), float(data[1]), time.monotonic())

    # ---- sim task access for scripted experts ------------------------------------------------------
    def _twin_attr(self, name: str):
        if self.twin is None:
            raise AttributeError(f"{name}: real/{self.robot_config.name} is a real arm, it has no sim scene "
                                 f"(scripted experts run on real/sim_arm)")
        return getattr(self.twin.env, name)

    task = property(lambda self: self._twin_attr("task"))
    data = property(lambda self: self._twin_attr("data"))
    model = property(lambda self: self._twin_attr("model"))
    robot = property(lambda self: self._twin_attr("robot"))

    # ---- checks ------------------------------------------------------------------------------------
    def _check_joint_names(self) -> None:
        with self._lock:
            incoming = self._incoming_names
        if incoming is None:
            return
        cfg, topic = self.robot_config, self.robot_config.joint_states_topic
        for field, wanted in (("joint_names", cfg.joint_names), ("gripper_state_joints", cfg.gripper_state_joints)):
            missing = [j for j in wanted if j not in incoming]
            if missing:
                raise JointNamesMismatch(
                    f"{self.config_path}: {field} {list(wanted)} do not match the joints the robot publishes on "
                    f"{topic} (DDS domain {self.domain}): {incoming}; not published: {missing}. Set {field} in "
                    f"{self.config_path} to the robot's names (a copy of the file, passed as real/<path>)")

    def _fresh(self, state, since: float | None = None) -> bool:
        if state is None:
            return False
        cfg = self.loop.cfg
        if time.monotonic() - state.received > cfg.stale_periods * cfg.period:
            return False
        return since is None or state.stamp >= since

    def _images(self, since_mono: float | None = None) -> tuple[dict | None, str]:
        out = {}
        for name, cam in self.cameras.items():
            got = cam.latest()
            if got is None or (since_mono is not None and got[1] < since_mono):
                return None, f"no frame from camera {name!r} ({cam.spec.describe()}) yet" + (
                    f": {cam.error}" if cam.error else "")
            frame, t = got
            if time.monotonic() - t > CAMERA_STALE_S:
                raise CameraError(f"camera {name!r} ({cam.spec.describe()}): newest frame is "
                                  f"{time.monotonic() - t:.1f} s old" + (f" ({cam.error})" if cam.error else ""))
            out[name] = square_resize(frame, self.settings.image_size)
        return out, ""

    def _wait_observation(self, timeout: float, since: float | None = None, since_mono: float | None = None,
                          success_after: int | None = None):
        """The first observation that is complete and, after a reset, from the new episode; or an error
        naming what did not arrive."""
        deadline = time.monotonic() + timeout
        cfg = self.robot_config
        while True:
            self._check_joint_names()
            why = ""
            state = self.loop.latest_state()
            if not self._fresh(state, since):
                why = (f"no joint states on {cfg.joint_states_topic} (DDS domain {self.domain}): is the robot's "
                       f"driver (or `robolearn sim-robot --domain {self.domain}`) running on this domain? "
                       f"(domain= or $ROS_DOMAIN_ID picks it)")
                if state is not None:
                    why = f"joint states on {cfg.joint_states_topic} stopped or are older than the reset"
            else:
                try:
                    obs = self.state_obs.build(state)
                except ObservationNotReady as exc:
                    why = str(exc)
                else:
                    images, why = self._images(since_mono)
                    if not why and success_after is not None and self._success[1] <= success_after:
                        why = f"no success value on {self.success_topic} yet"
                    if not why:
                        if images:
                            obs["images"] = images
                        return obs, state
            if time.monotonic() > deadline:
                dropped = self.bus.last_error.get(cfg.joint_states_topic)
                extra = f" (last dropped joint state: {dropped})" if dropped else ""
                raise TimeoutError(f"real/{cfg.name}: no complete observation within {timeout:g} s: {why}{extra}")
            time.sleep(0.002)

    # ---- the control period ------------------------------------------------------------------------
    @staticmethod
    def _sleep_until(t: float) -> None:
        while True:
            dt = t - time.perf_counter()
            if dt <= 0:
                return
            time.sleep(dt)

    def _run_period(self) -> None:
        """The loop's ticks for one control period on an absolute schedule, then the end of the period."""
        period = self.loop.cfg.period
        if time.perf_counter() > self._next_t + period:  # the caller was late: restart the schedule
            self.late_steps += 1
            self._next_t = time.perf_counter()
        for _ in range(self.ticks_per_step):
            self._sleep_until(self._next_t)
            start = time.perf_counter()
            self.loop.step()
            self.loop.stats.tick(start - self._next_t, time.perf_counter() - start)
            self._next_t += period
        self._sleep_until(self._next_t)

    def _command(self, command: np.ndarray) -> None:
        """Queue one policy step's command vector (joints, gripper) and execute it for one period."""
        self.loop.queue.merge(np.asarray(command, np.float64)[None], self.loop.queue.next_step)
        self._run_period()

    # ---- gymnasium ---------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._reset_seed = seed
        return super().reset(seed=seed, options=options)

    def _reset(self, options: dict):
        if self._closed:
            raise RuntimeError("the env is closed")
        if self.loop.filter.estopped:
            raise RobotStopped(f"real/{self.robot_config.name}: e-stop latched on {self.robot_config.estop_topic}; "
                               f"publish false there to clear it, then reset")
        s, timeout = self.settings, self.settings.connect_timeout
        self.loop.set_enabled(False)
        since = since_mono = success_after = None
        if self._reset_writer is not None:
            since, since_mono = self._request_reset(self._reset_seed)
        if self.success_topic:
            success_after = self._success[1] if since is not None else 0
        obs, state = self._wait_observation(timeout, since, since_mono, success_after)
        self.loop.set_enabled(True)  # the rate limit restarts from the measured position
        if s.home:
            self._next_t = time.perf_counter()
            self._go_home()
            self.loop.set_enabled(False)
            self.loop.set_enabled(True)  # the episode's first delta starts from the measured pose
            obs, state = self._wait_observation(timeout)
        self._steps = 0
        self._started = True
        self._next_t = time.perf_counter()
        return self._finish_obs(obs, state), {"success": self._success[0] if self.success_topic else False}

    def _request_reset(self, seed: int | None) -> tuple[float, float]:
        from robolearn.deploy import ros_msgs as M

        self._request += 1
        msg = M.Float64MultiArray(data=[float(self._request), float(-1 if seed is None else seed)])
        deadline = time.monotonic() + self.settings.reset_timeout
        next_send = 0.0
        while True:
            with self._lock:
                done = self._reset_done
            if done is not None and done[0] == msg.data[0]:
                return done[1], done[2]
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(
                    f"real/{self.robot_config.name}: no answer on {self.settings.reset_done_topic} to the reset "
                    f"request on {self.reset_topic} within {self.settings.reset_timeout:g} s (DDS domain "
                    f"{self.domain}); sim-robot answers it; for a real cell set extra.real_env.reset_topic: ''")
            if now >= next_send and self._reset_writer.matched() > 0:
                # Sent again until answered (a peer still discovering us may miss it); the robot applies
                # a request id once.
                self._reset_writer.write(msg)
                next_send = now + 0.25
            time.sleep(0.002)

    def _go_home(self) -> None:
        s = self.settings
        home = np.asarray(s.home, np.float64)
        command = np.concatenate([home, [-1.0]]) if self.mapper.gripper else home  # gripper open
        deadline = time.monotonic() + s.reset_timeout
        while True:
            state = self.loop.latest_state()
            if self._fresh(state) and np.max(np.abs(state.q - home)) <= s.home_tolerance:
                return
            if time.monotonic() > deadline:
                at = None if state is None else np.round(state.q, 3).tolist()
                raise TimeoutError(f"real/{self.robot_config.name}: did not reach home {list(s.home)} within "
                                   f"{s.reset_timeout:g} s (at {at}; mode {self.loop.mode})")
            self._command(command)

    def _step(self, action: np.ndarray):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self.loop.filter.estopped:
            return self._last_obs, 0.0, False, True, {"success": False, "estop": True}
        state = self.loop.latest_state()
        if not self._fresh(state):
            _, state = self._wait_observation(self.settings.connect_timeout)
        targets = self.mapper.to_targets(np.asarray(action, np.float64)[None], state, self.loop.filter.last)
        self._command(targets[0])
        obs, state = self._wait_observation(self.settings.connect_timeout)
        obs = self._finish_obs(obs, state)
        self._steps += 1
        success = bool(self._success[0]) if self.success_topic else False
        terminated = success and self.terminate_on_success
        truncated = self._steps >= self.max_episode_steps and not terminated
        info = {"success": success}
        if self.loop.filter.estopped:
            truncated, info["estop"] = True, True
        return obs, float(success), terminated, truncated, info

    def _finish_obs(self, obs: dict, state) -> dict:
        if self.twin is not None:
            self.twin.pose(state)
        self._last_obs = obs
        return obs

    def render(self):
        for cam in self.cameras.values():
            got = cam.latest()
            if got is not None:
                return got[0]
        return None

    def report(self) -> dict:
        """Loop timing, safety counters and transport counts (what ``serve``'s status file holds)."""
        rep = self.node.status()
        rep.update(late_steps=self.late_steps, success_source=self.success_source,
                   cameras={n: c.frames for n, c in self.cameras.items()})
        return rep

    def close(self) -> None:
        for cam in getattr(self, "cameras", {}).values():
            cam.close()
        self.cameras = {}
        bus, self.bus = getattr(self, "bus", None), None
        self._closed = True
        if bus is not None:
            bus.close()


def make_real_env(robot: str, **overrides) -> RealRobotEnv:
    """Registry factory for ``real/<robot>`` (a shipped robot name or a robot config path)."""
    if not robot:
        raise ValueError("real/ needs a robot: real/sim_arm, real/franka_fr3, real/ur5e or real/<config.yaml>")
    return RealRobotEnv(robot, **overrides)
