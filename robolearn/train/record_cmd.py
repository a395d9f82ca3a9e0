"""``robolearn record``: teleoperated demonstrations into a crash-safe episode store.

    robolearn record --env sim/pick_cube --teleop keyboard --episodes 20 --out data/pick_human

A person drives the arm with a teleop device (keyboard in this terminal, SpaceMouse, gamepad) while the
env runs at its control rate on a fixed-rate loop. Keys (the keyboard config's roles; a gamepad's or
SpaceMouse's buttons can play them too): Enter starts an episode, g marks it a success and b a failure
(either saves it), x discards it and re-records the same scene (same seed), q quits. When the env ends
an episode itself (task solved, time limit) it waits for the mark; Enter keeps the env's verdict.
A live status line shows the episode, step, successes so far and who is acting; a key pressed where it
means nothing gets a message on that line, never a crash.

Why episodes are buffered and written only when marked: the mark decides the episode's meta (label,
who marked it) and its final success flag, and the store's files are immutable once written. Each
marked episode is written atomically at once, so Ctrl-C or a crash loses only the episode in progress
(an ended-but-unmarked episode is saved with the env's verdict on Ctrl-C or q). Encoding frames at the
mark rather than every tick also keeps PNG compression out of the control loop.

Episode meta: env, source ``teleop:<device>``, device, teleop_config, operator (``--operator``, default
$USER), seed, episode, label (success|failure), marked_by (operator|env), env_success, fps, state and
action names.
"""
from __future__ import annotations

import dataclasses
import datetime
import getpass
import os
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from robolearn.hardware.teleop.base import GRIPPER_ROLES  # light: numpy and yaml only

WAITING, RECORDING, ENDED, DONE = "waiting", "recording", "ended", "done"
MESSAGE_S = 2.5  # how long a status message stays on the status line


# ----------------------------------------------------------------------------------------------
# A fixed-rate loop
# ----------------------------------------------------------------------------------------------
class RateLoop:
    """Ticks at ``hz`` on an absolute schedule (tick k at t0 + k / hz), so sleep errors never accumulate.

    A tick that wakes more than a whole period late skips the ticks it missed instead of running them
    back to back (a burst of env steps would move a real arm faster than commanded); they are counted
    in ``missed``. Jitter is how late each tick woke. ``restart()`` re-anchors the schedule after work
    that is allowed to take long (an env reset, writing an episode).
    """

    def __init__(self, hz: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        if not hz > 0:
            raise ValueError(f"control rate must be positive, got {hz!r}")
        self.period = 1.0 / float(hz)
        self.clock, self.sleep = clock, sleep
        self.ticks = 0
        self.missed = 0
        self.jitter: list[float] = []
        self.restart()

    def restart(self) -> None:
        self._t0 = self.clock()
        self._k = 0

    def wait(self, measure: bool = True) -> float:
        """Sleep until the next tick; returns the time woken. ``measure`` False keeps idle ticks out of the stats."""
        target = self._t0 + self._k * self.period
        now = self.clock()
        if now < target:
            self.sleep(target - now)
            now = self.clock()
        late = now - target
        skipped = int(late // self.period)
        if skipped:  # woke after the next tick(s) were due: drop them, stay on the schedule
            self._k += skipped
            target += skipped * self.period
        if measure:
            self.ticks += 1
            self.missed += skipped
            self.jitter.append(now - target)
        self._k += 1
        return now

    def stats(self) -> dict[str, float]:
        j = np.asarray(self.jitter) * 1e3 if self.jitter else np.zeros(1)
        return {"ticks": self.ticks, "missed_ticks": self.missed, "period_ms": self.period * 1e3,
                "jitter_p50_ms": float(np.percentile(j, 50)), "jitter_p99_ms": float(np.percentile(j, 99)),
                "jitter_max_ms": float(j.max())}


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RecordConfig:
    env: str
    teleop: str
    episodes: int
    out: str
    operator: str = ""
    seed: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    max_steps: int | None = None
    preview: str = "auto"
    device: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.cameras, str):
            self.cameras = tuple(c.strip() for c in self.cameras.split(",") if c.strip())
        self.cameras = tuple(self.cameras)
        if isinstance(self.episodes, bool) or not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"--episodes must be an int >= 1, got {self.episodes!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be an int >= 0, got {self.seed!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"--max-steps must be an int >= 1, got {self.max_steps!r}")
        if self.preview not in ("auto", "on", "off"):
            raise ValueError(f"--preview must be auto, on or off, got {self.preview!r}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras listed twice: {list(self.cameras)}")
        self.operator = self.operator or default_operator()
        if not self.operator.strip():
            raise ValueError("--operator must not be empty")


def default_operator() -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ----------------------------------------------------------------------------------------------
# Camera preview: only with a display, and OpenCV imported only then
# ----------------------------------------------------------------------------------------------
def display_available() -> str | None:
    """Why there is no display (None when there is one)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "no display ($DISPLAY and $WAYLAND_DISPLAY are unset)"


class Preview:
    """An OpenCV window of the camera frames; built only when a display exists."""

    WINDOW = "robolearn record"

    def __init__(self):
        import cv2  # a GUI toolkit is loaded only here, never at import time

        try:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_AUTOSIZE)
        except cv2.error as exc:
            raise RuntimeError(f"OpenCV cannot open a window ({str(exc).strip().splitlines()[-1]}; "
                               "opencv-python-headless has no GUI: install opencv-python)") from None
        self.cv2 = cv2

    def show(self, obs: dict) -> None:
        imgs = list((obs.get("images") or {}).values())
        if not imgs:
            return
        h = max(i.shape[0] for i in imgs)
        row = np.concatenate([np.pad(i, ((0, h - i.shape[0]), (0, 0), (0, 0))) for i in imgs], axis=1)
        scale = max(1, 256 // h)
        row = np.repeat(np.repeat(row, scale, axis=0), scale, axis=1)
        self.cv2.imshow(self.WINDOW, np.ascontiguousarray(row[..., ::-1]))
        self.cv2.waitKey(1)

    def close(self) -> None:
        self.cv2.destroyWindow(self.WINDOW)


def make_preview(mode: str, has_cameras: bool) -> tuple[Preview | None, str]:
    """(preview or None, a note for the header)."""
    if mode == "off":
        return None, "preview off"
    why = display_available()
    if why is None and not has_cameras:
        why = "no cameras (pass --cameras front,wrist)"
    if why is None:
        try:
            return Preview(), "preview window open"
        except (ImportError, RuntimeError) as exc:
            why = str(exc)
    if mode == "on":
        raise ValueError(f"--preview on: cannot show a preview: {why}")
    return None, f"preview off: {why}"


@contextmanager
def deferred_sigint():
    """Ctrl-C while an episode file is being written waits until it is written (then interrupts)."""
    if not hasattr(signal, "SIGINT") or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    hits = []
    old = signal.signal(signal.SIGINT, lambda *_: hits.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if hits:
            raise KeyboardInterrupt


# ----------------------------------------------------------------------------------------------
# The recorder
# ----------------------------------------------------------------------------------------------
class StatusLine:
    """One line rewritten in place on a terminal; on a pipe or file, a new line only when it changes."""

    def __init__(self, out: TextIO | None):
        self.out = out
        self.tty = bool(out is not None and hasattr(out, "isatty") and out.isatty())
        self._last = ""

    def show(self, text: str) -> None:
        if self.out is None or text == self._last:
            return
        self._last = text
        if self.tty:
            self.out.write("\r\x1b[K" + text)
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        """A permanent line above the status line."""
        if self.out is None:
            return
        self.out.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self._last = ""
        self.out.flush()


class Recorder:
    """The record loop: a state machine (waiting -> recording -> [ended] -> waiting ...) on a fixed-rate tick."""

    def __init__(self, env, store, device, cfg: RecordConfig, *, controls=None, out: TextIO | None = sys.stdout,
                 preview: Preview | None = None, hz: float | None = None,
                 clock: Callable[[], float] = time.perf_counter, trace: list | None = None):
        self.env, self.store, self.device, self.cfg = env, store, device, cfg
        self.devices = [device] + ([controls] if controls is not None and controls is not device else [])
        self.status = StatusLine(out)
        self.preview = preview
        hz = hz or (getattr(env, "metadata", None) or {}).get("render_fps")
        if not hz:
            raise ValueError(f"{cfg.env}: the env does not say its control rate (metadata['render_fps'])")
        self.clock = clock
        self.rate = RateLoop(hz, clock=clock)
        self.trace = trace  # per recorded tick: (woke, polled, step_start, step_end, events read) for benchmarks
        self.state = WAITING
        self.index = len(store)  # the episode being recorded (its seed is seed + index)
        self.saved: list[dict] = []  # this run's episodes: name, label, steps
        self.discarded = 0
        self.step = 0
        self.acting = "-"
        self._message, self._message_t = "", -1e9
        self._obs0 = None
        self._obs = None
        self._steps: list[tuple] = []
        self._env_success = False
        self.meta = self._base_meta()

    # -- meta -------------------------------------------------------------------------------------------
    def _base_meta(self) -> dict[str, Any]:
        cfg, dev = self.cfg, self.device
        config = getattr(dev, "config", None)
        meta = {"env": cfg.env, "source": f"teleop:{dev.name}", "device": dev.name, "operator": cfg.operator,
                "teleop_config": str(getattr(config, "source", "") or "")}
        fps = (getattr(self.env, "metadata", None) or {}).get("render_fps")
        if fps:
            meta["fps"] = int(fps)
        layout = getattr(getattr(self.env, "unwrapped", self.env), "state_layout", None)
        if layout:
            meta["state_names"] = [name if n == 1 else f"{name}.{i}" for name, n in layout for i in range(n)]
        from robolearn.data.lerobot_export import ACTION_NAMES

        dim = int(self.env.action_space.shape[0])
        names = next((v for (p, size), v in ACTION_NAMES.items() if cfg.env.startswith(p) and size == dim), None)
        if names:
            meta["action_names"] = list(names)
        return meta

    # -- messages and the status line ------------------------------------------------------------------
    def message(self, text: str) -> None:
        self._message, self._message_t = text, self.clock()

    def render_status(self) -> str:
        done = len(self.saved)
        wins = sum(e["label"] == "success" for e in self.saved)
        head = {WAITING: "READY  Enter starts", RECORDING: "REC", ENDED: "ENDED  g/b mark, Enter keeps env verdict",
                DONE: "DONE"}[self.state]
        msg = self._message if self.clock() - self._message_t < MESSAGE_S else ""
        line = (f"ep {min(self.index, self.cfg.episodes - 1) + 1}/{self.cfg.episodes} | step {self.step} | "
                f"successes {wins}/{done} | acting: {self.acting} | {head}")
        return line + (f" | {msg}" if msg else "")

    # -- episode lifecycle ----------------------------------------------------------------------------
    def _reset_env(self) -> None:
        obs, _info = self.env.reset(seed=self.cfg.seed + self.index)
        self._obs0 = self._obs = obs
        self._steps = []
        self.step = 0
        self._env_success = False
        self.acting = "-"
        gripper = self._initial_gripper(obs)
        for dev in self.devices:
            if hasattr(dev, "set_gripper"):
                dev.set_gripper(gripper)
        self.rate.restart()

    def _initial_gripper(self, obs) -> float:
        """The robot's gripper as a command (-1 open, +1 closed), so the first move does not snap it."""
        layout = getattr(getattr(self.env, "unwrapped", self.env), "state_layout", None) or []
        off = 0
        for name, n in layout:
            if name == "gripper" and n == 1:
                opening = float(np.asarray(obs["state"])[off])
                return 1.0 if opening < 0.5 else -1.0
            off += n
        return -1.0

    def _finish(self, label: str, marked_by: str) -> None:
        """Write the buffered episode with its mark; the last step's success/terminal flags follow the mark."""
        steps = self._steps
        if not steps:
            self.message("nothing recorded yet: move the arm before marking")
            return
        success = label == "success"
        meta = {**self.meta, "seed": self.cfg.seed + self.index, "episode": self.index, "label": label,
                "marked_by": marked_by, "env_success": bool(self._env_success),
                "recorded_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
        with deferred_sigint():
            writer = self.store.writer()
            writer.reset(self._obs0, meta=meta)
            last = len(steps) - 1
            for i, (action, obs, reward, term, trunc) in enumerate(steps):
                if i == last:  # the person's mark is the truth about how the episode ended
                    term, trunc = (True, False) if success else (False, True)
                writer.step(action, obs, reward, term, trunc, {"success": success and i == last})
            path = writer.close()
        self.saved.append({"name": Path(path).stem, "label": label, "steps": len(steps), "marked_by": marked_by})
        self.status.say(f"saved episode {self.index + 1} ({Path(path).name}): {label}, {len(steps)} steps, "
                        f"marked by {'you' if marked_by == 'operator' else 'the env'}")
        self.index += 1
        self._steps = []
        self._message = ""  # the previous episode's messages do not belong to the next one
        if self.index >= self.cfg.episodes:
            self.state = DONE
        else:
            self.state = WAITING
            self._reset_env()

    def _discard(self) -> None:
        n = len(self._steps)
        self.discarded += 1
        self.status.say(f"discarded episode {self.index + 1} ({n} steps): re-recording the same scene")
        self._message = ""
        self.state = WAITING
        self._reset_env()

    # -- one tick ------------------------------------------------------------------------------------
    def _handle(self, roles: set[str], unmapped: tuple, moving: bool) -> None:
        s = self.state
        for key in unmapped:
            self.message(f"key {key!r} does nothing here (Enter start, g success, b failure, x discard, q quit)")
        if s == WAITING:
            if roles & {"success", "failure"}:
                self.message(f"no episode to mark: press Enter to start episode {self.index + 1}")
            elif "discard" in roles:
                self.message("nothing to discard: no episode is being recorded")
            elif moving and "start" not in roles:
                self.message("the robot waits for Enter before it moves")
            if "start" in roles:
                self.state = RECORDING
                self.rate.restart()
                self.message(f"recording episode {self.index + 1}")
            if "quit" in roles:
                self.state = DONE
        elif s == RECORDING:
            if "start" in roles:
                self.message(f"already recording episode {self.index + 1}: g success, b failure, x discard")
            if "discard" in roles:
                self._discard()
            elif "success" in roles or "failure" in roles:
                if roles >= {"success", "failure"}:
                    self.message("both success and failure pressed: press one of them")
                else:
                    self._finish("success" if "success" in roles else "failure", "operator")
            if "quit" in roles and self.state != DONE:
                if self.state == RECORDING and self._steps:
                    self.status.say(f"quit: episode {self.index + 1} was not marked and is dropped "
                                    f"({len(self._steps)} steps)")
                self.state = DONE
        elif s == ENDED:
            if "discard" in roles:
                self._discard()
            elif roles >= {"success", "failure"}:
                self.message("both success and failure pressed: press one of them")
            elif "success" in roles or "failure" in roles:
                self._finish("success" if "success" in roles else "failure", "operator")
            elif "start" in roles or "quit" in roles:
                self._finish("success" if self._env_success else "failure", "env")
            if "quit" in roles:
                self.state = DONE

    def _env_step(self, action: np.ndarray) -> None:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.step += 1
        if self.cfg.max_steps is not None and self.step >= self.cfg.max_steps:
            truncated = True
        self._env_success = self._env_success or bool(info.get("success", False))
        self._steps.append((np.asarray(action, np.float32).copy(), obs, float(reward), bool(terminated),
                            bool(truncated)))
        self._obs = obs
        if terminated or truncated:
            self.state = ENDED
            self.acting = "-"
            why = "the task is solved" if self._env_success else "the time limit" if truncated else "the env"
            self.message(f"ended by {why}: g success, b failure, x discard, Enter keeps "
                         f"{'success' if self._env_success else 'failure'}")

    def tick(self) -> None:
        recording = self.state == RECORDING
        woke = self.rate.wait(measure=recording)
        roles, unmapped = set(), ()
        for dev in self.devices[1:]:  # the terminal next to a SpaceMouse / gamepad: control and gripper keys
            c = dev.poll()
            roles |= set(c.buttons)
            unmapped += tuple(c.unmapped)
            for role in sorted(roles & set(GRIPPER_ROLES)):
                self.device.apply_gripper_role(role)
        cmd = self.device.poll()
        roles |= set(cmd.buttons)
        unmapped = tuple(cmd.unmapped) + unmapped
        polled = self.clock()
        n_events = sum(getattr(d, "events", 0) for d in self.devices)
        if self.state == RECORDING and not (roles & {"success", "failure", "discard", "quit"}):
            # The tick's action goes out first; a mark pressed this tick ends the episode without it.
            self.acting = "operator" if cmd.active else "operator (still)"
            t_step = self.clock()
            self._env_step(np.asarray(cmd.action, dtype=np.float32))
            if self.trace is not None:
                self.trace.append((woke, polled, t_step, self.clock(), n_events))
        elif self.state == RECORDING and self.trace is not None:
            self.trace.append((woke, polled, None, None, n_events))
        self._handle(roles, unmapped, bool(cmd.active))
        if self.preview is not None and self._obs is not None:
            self.preview.show(self._obs)
        self.status.show(self.render_status())

    def run(self) -> dict[str, Any]:
        if self.index >= self.cfg.episodes:
            self.state = DONE
            return self.summary()
        self._reset_env()
        self.status.show(self.render_status())
        try:
            while self.state != DONE:
                self.tick()
        except KeyboardInterrupt:
            if self.state == ENDED and self._steps:  # finished but unmarked: keep it with the env's verdict
                self._finish("success" if self._env_success else "failure", "env")
            elif self.state == RECORDING and self._steps:
                self.status.say(f"interrupted: episode {self.index + 1} in progress dropped ({len(self._steps)} steps); "
                                f"{len(self.saved)} finished episode(s) are saved")
            raise
        finally:
            self.acting = "-"
            self.status.show(self.render_status())
            self.status.say("")
        return self.summary()

    def summary(self) -> dict[str, Any]:
        wins = sum(e["label"] == "success" for e in self.saved)
        return {"env": self.cfg.env, "device": self.device.name, "operator": self.cfg.operator,
                "out": self.cfg.out, "episodes": len(self.saved), "successes": wins, "discarded": self.discarded,
                "store_episodes": len(self.store), "saved": self.saved, "loop": self.rate.stats()}


# ----------------------------------------------------------------------------------------------
# Wiring: env, store, devices
# ----------------------------------------------------------------------------------------------
def _check_store(store, cfg: RecordConfig) -> None:
    """Refuse to append episodes of another env or other cameras to an existing store."""
    valid = [e for _, e in sorted(store.refresh()["files"].items()) if "corrupt" not in e]
    if not valid:
        return
    meta = store.load(store.names()[0], images=False).meta
    if meta.get("env") not in (None, cfg.env):
        raise ValueError(f"{store.root} already holds episodes of {meta['env']!r}, not {cfg.env!r}; use another --out")
    have = sorted(k.split("/", 1)[1] for k in valid[0]["shapes"] if k.startswith("images/"))
    if have != sorted(cfg.cameras):
        show = ",".join(have) or "none"
        fix = f"pass --cameras {show}" if have else "drop --cameras"
        raise ValueError(f"{store.root} already holds episodes with cameras {show}, not "
                         f"{','.join(cfg.cameras) or 'none'}; {fix} to resume it, or use another --out")


def open_devices(cfg: RecordConfig, fd: int | None = None):
    """(teleop device, keyboard for the control keys or None when the device is the keyboard)."""
    from robolearn.hardware.teleop import load_teleop_config, open_device

    config = load_teleop_config(cfg.teleop)
    device = open_device(config, path=cfg.device, fd=fd)
    if config.device == "keyboard":
        return device, None
    try:  # the terminal still gives Enter / g / b / x / q next to a SpaceMouse or gamepad
        keys = load_teleop_config("keyboard")
        keys.keys = {}
        return device, open_device(keys, fd=fd)
    except FileNotFoundError:
        device.close()
        raise


def record(cfg: RecordConfig, *, out: TextIO | None = sys.stdout, fd: int | None = None, device=None, controls=None,
           trace: list | None = None, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Run a recording session; returns its summary. ``device`` / ``controls`` replace the opened devices."""
    import robolearn
    from robolearn.data.episode_store import EpisodeStore

    say = log or (lambda _m: None)
    overrides: dict[str, Any] = {}
    if cfg.cameras:
        overrides.update(cameras=list(cfg.cameras), image_size=cfg.image_size)
    if cfg.max_steps is not None and cfg.env.startswith(("sim/", "real/")):
        overrides["max_episode_steps"] = cfg.max_steps  # the sim's own time limit would cut a slow person short
    opened = []
    env = None
    try:
        if device is None:
            device, controls = open_devices(cfg, fd)
            opened = [d for d in (device, controls) if d is not None]
        env = robolearn.make(cfg.env, **overrides)
        if not Path(cfg.out).exists():
            Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        store = EpisodeStore(cfg.out)
        _check_store(store, cfg)
        preview, note = make_preview(cfg.preview, bool(cfg.cameras))
        start = len(store)
        fps = (env.metadata or {}).get("render_fps")
        say(f"record: {cfg.episodes} episodes of {cfg.env} by {cfg.operator} with the {device.name} -> {cfg.out}"
            + (f" (resuming after {start})" if start else "") + f"; {fps} Hz; {note}")
        keys = next((d for d in (device, controls) if d is not None and hasattr(d, "describe")), None)
        if keys is not None:
            say(keys.describe())
        rec = Recorder(env, store, device, cfg, controls=controls, out=out, preview=preview, trace=trace)
        try:
            return rec.run()
        finally:
            if preview is not None:
                preview.close()
    finally:
        for d in opened:
            d.close()
        if env is not None:
            env.close()


def format_summary(s: dict[str, Any]) -> str:
    loop = s["loop"]
    return "\n".join([
        f"recorded {s['episodes']} episode{'' if s['episodes'] == 1 else 's'} of {s['env']} ({s['successes']} marked success, {s['discarded']} discarded) "
        f"by {s['operator']} with the {s['device']} into {s['out']}; the store holds {s['store_episodes']}",
        f"  loop: {loop['ticks']} recorded ticks at {1000 / loop['period_ms']:.0f} Hz, jitter p99 "
        f"{loop['jitter_p99_ms']:.2f} ms, {loop['missed_ticks']} missed ticks",
    ])


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--env", required=True, help="env name, e.g. sim/pick_cube")
    parser.add_argument("--teleop", default="keyboard",
                        help="teleop device config: keyboard, spacemouse, gamepad, or a YAML path "
                             "(hardware/teleop/*.yaml)")
    parser.add_argument("--episodes", type=int, required=True, help="total episodes the store should hold")
    parser.add_argument("--out", required=True, help="episode store directory (resumes if it has episodes)")
    parser.add_argument("--operator", default="", help="who teleoperates (default: $USER); stored in each episode")
    parser.add_argument("--seed", type=int, default=0, help="episode i starts from the scene of seed + i")
    parser.add_argument("--cameras", default="", help="comma-separated camera names, e.g. front,wrist")
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--max-steps", type=int, default=None, help="end episodes after this many steps "
                        "(sim envs: replaces the task's time limit)")
    parser.add_argument("--device", default="", help="device file (/dev/hidraw3, /dev/input/event5); default: search")
    parser.add_argument("--preview", default="auto", choices=["auto", "on", "off"],
                        help="camera preview window: auto = when a display exists and --cameras are on")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")


def run(args) -> int:
    import json

    cfg = RecordConfig(env=args.env, teleop=args.teleop, episodes=args.episodes, out=args.out,
                       operator=args.operator, seed=args.seed, cameras=args.cameras, image_size=args.image_size,
                       max_steps=args.max_steps, preview=args.preview, device=args.device)
    # The live status line goes to the terminal (stderr under --json, so stdout stays one JSON object).
    stream = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    summary = record(cfg, out=stream, log=say)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        say(format_summary(summary))
    return 0
