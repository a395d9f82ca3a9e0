"""Inference in a child process: the loop process keeps its GIL to itself.

The parent (``ProcessInference``, used by the loop's worker thread) and the child
(``python -m robolearn.deploy.inference_proc``) talk over the child's stdin/stdout in frames of
a JSON header plus a NumPy ``.npz`` body (no pickle either way). The child builds the policy
from a spec ({"checkpoint": DIR} | {"policy": "file.py:Name"} | {"bench": "consistency"|...}, one
of the untrained policies of ``robolearn.deploy.synthetic_policies``), plus the robot's kinematics,
observation builder and action mapper from the robot config, and answers ``infer`` (state ->
joint-target chunk), ``observe`` and ``reset``.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import subprocess
import sys
import threading
import time

import numpy as np

from robolearn.deploy.inference import ObservationNotReady

_LEN = struct.Struct("<II")


def write_frame(f, header: dict, arrays: dict | None = None) -> None:
    buf = io.BytesIO()
    np.savez(buf, **(arrays or {}))
    head = json.dumps(header).encode()
    body = buf.getvalue()
    f.write(_LEN.pack(len(head), len(body)) + head + body)
    f.flush()


def _read_exact(f, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = f.read(n - len(data))
        if not chunk:
            raise EOFError("inference process closed its pipe")
        data += chunk
    return data


def read_frame(f) -> tuple[dict, dict]:
    nh, nb = _LEN.unpack(_read_exact(f, _LEN.size))
    header = json.loads(_read_exact(f, nh))
    with np.load(io.BytesIO(_read_exact(f, nb)), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return header, arrays


def state_arrays(state, last_command) -> dict:
    out = {"q": np.asarray(state.q, np.float64), "dq": np.asarray(state.dq, np.float64),
           "meta": np.array([state.received, state.stamp, np.nan if state.gripper is None else state.gripper])}
    if last_command is not None:
        out["last_command"] = np.asarray(last_command, np.float64)
    pose = state.extras.get("object_pose")
    if pose is not None:
        out["obj_pos"], out["obj_quat"] = np.asarray(pose[0]), np.asarray(pose[1])
    for cam, img in state.extras.get("images", {}).items():
        out[f"img_{cam}"] = np.asarray(img)
    return out


def state_from_arrays(a: dict):
    from robolearn.deploy.loop import RobotState

    received, stamp, gripper = (float(v) for v in a["meta"])
    extras: dict = {}
    if "obj_pos" in a:
        extras["object_pose"] = (a["obj_pos"], a["obj_quat"])
    images = {k[4:]: v for k, v in a.items() if k.startswith("img_")}
    if images:
        extras["images"] = images
    return RobotState(q=a["q"], dq=a["dq"], received=received, stamp=stamp,
                      gripper=None if np.isnan(gripper) else gripper, extras=extras)


class ProcessInference:
    """Parent side. Only the loop's worker thread calls infer/observe/reset."""

    def __init__(self, spec: dict, robot_cfg, startup_timeout: float = 180.0):
        env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, "-m", "robolearn.deploy.inference_proc"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        write_frame(self.proc.stdin, {"op": "init", "spec": spec, "robot": dataclasses.asdict(robot_cfg)})
        result: dict = {}

        def wait_ready():
            try:
                result["header"], _ = read_frame(self.proc.stdout)
            except Exception as exc:
                result["error"] = str(exc)
        t = threading.Thread(target=wait_ready, daemon=True)
        t.start()
        t.join(startup_timeout)
        header = result.get("header")
        if header is None or not header.get("ok"):
            why = (header or {}).get("error") or result.get("error") or f"no answer within {startup_timeout:.0f} s"
            self.close()
            raise ValueError(f"inference process failed to start: {why}")
        self.command_dim = int(header["command_dim"])
        self.action_dim = int(header["action_dim"])
        self.last_child_seconds = 0.0

    def _call(self, op: str, arrays: dict | None = None) -> tuple[dict, dict]:
        write_frame(self.proc.stdin, {"op": op}, arrays)
        header, out = read_frame(self.proc.stdout)
        if not header.get("ok"):
            if header.get("not_ready"):
                raise ObservationNotReady(header.get("error", "observation not ready"))
            raise ValueError(header.get("error", "inference process error"))
        return header, out

    def reset(self) -> None:
        self._call("reset")

    def observe(self, state) -> None:
        self._call("observe", state_arrays(state, None))

    def infer(self, state, last_command) -> np.ndarray:
        header, out = self._call("infer", state_arrays(state, last_command))
        self.last_child_seconds = float(header.get("seconds", 0.0))
        return out["targets"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _build(spec: dict, robot: dict):
    from robolearn.config_io import from_dict
    from robolearn.deploy.inference import LocalInference
    from robolearn.deploy.node import build_kinematics, build_mapper, load_policy_object
    from robolearn.hardware.robot_config import RobotConfig

    cfg = from_dict(RobotConfig, robot, where="robot config")
    if spec.get("bench"):
        from robolearn.deploy.synthetic_policies import build_synthetic_policies

        name = spec["bench"]
        policy = build_synthetic_policies([name], checkpoint=spec.get("checkpoint"),
                                          recipe=spec.get("recipe", "policies/diffusion.yaml"),
                                          threads=int(spec.get("threads", 1)))[name]
    else:
        if spec.get("checkpoint"):
            import torch

            torch.set_num_threads(int(spec.get("threads", 1)))
        policy = load_policy_object(spec.get("checkpoint"), spec.get("policy"), spec.get("device", "cpu"))
    kin, obs_builder = build_kinematics(cfg)
    return LocalInference(policy, obs_builder, build_mapper(cfg, kin))


def main() -> int:
    """Child: frames in on stdin, frames out on the original stdout; prints go to stderr."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    header, _ = read_frame(inp)
    try:
        backend = _build(header["spec"], header["robot"])
    except Exception as exc:
        write_frame(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_frame(out, {"ok": True, "command_dim": backend.command_dim, "action_dim": backend.mapper.action_dim})
    while True:
        try:
            header, arrays = read_frame(inp)
        except EOFError:
            return 0
        op = header.get("op")
        try:
            if op == "infer":
                t0 = time.perf_counter()
                last = arrays.get("last_command")
                targets = backend.infer(state_from_arrays(arrays), last)
                write_frame(out, {"ok": True, "seconds": time.perf_counter() - t0}, {"targets": targets})
            elif op == "observe":
                backend.observe(state_from_arrays(arrays))
                write_frame(out, {"ok": True})
            elif op == "reset":
                backend.reset()
                write_frame(out, {"ok": True})
            else:
                write_frame(out, {"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:
            write_frame(out, {"ok": False, "error": str(exc), "not_ready": isinstance(exc, ObservationNotReady)})


if __name__ == "__main__":
    sys.exit(main())
