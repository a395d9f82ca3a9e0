"""``robolearn bench loop``: the controller loop at 100 Hz against the MuJoCo sim robot over DDS loopback.

For each policy (a one-step consistency policy and DDIM-10 diffusion on the same 1-D U-Net, random
weights: latency does not depend on training) the serving node runs in this process, the sim robot
in another (``robolearn sim-robot``), and a probe participant in this process subscribes to the
command topic. Reported per policy: missed deadlines, tick jitter p50/p99/max, tick work, inference
latency, queue depth, and end-to-end latency = command received by the probe - the header stamp of
the joint state the command was computed from (robot publish -> node -> command on the wire).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="run time per policy (s)")
    p.add_argument("--policies", default="consistency,ddim10",
                   help="comma list of: consistency, ddim10, ddpm100, none (a zero policy: loop cost alone)")
    p.add_argument("--checkpoint", default=None, help="diffusion checkpoint for the network (default: recipe, random weights)")
    p.add_argument("--recipe", default="diffusion", help="policy recipe: a shipped name or a YAML path")
    p.add_argument("--robot", default="sim_arm", help="robot config: a shipped name or a YAML path")
    p.add_argument("--env", default="sim/peg_insert")
    p.add_argument("--domain", type=int, default=None, help="DDS domain id (default: from the process id)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for inference")
    p.add_argument("--rt-priority", type=int, default=50,
                   help="SCHED_FIFO priority of the loop thread, as on a robot PC (0 = normal scheduling); "
                        "without CAP_SYS_NICE it falls back to normal scheduling and says so in the JSON")
    p.add_argument("--inference-nice", type=int, default=0, help="nice increment of the inference thread")
    p.add_argument("--inference", choices=("process", "thread"), default="process",
                   help="policy in a child process (default) or a worker thread of the loop process")
    p.add_argument("--out", default="runs/bench/loop.json")


def timer_baseline(seconds: float, period: float = 0.01, spin: float = 0.0003, rt_priority: int = 0) -> dict:
    """Lateness of a bare thread doing only the loop's sleep-then-spin wait: the machine's floor for jitter."""
    from robolearn.deploy.stats import summarize

    late: list[float] = []
    info = {"scheduling": "default"}

    def body():
        if rt_priority > 0:
            try:
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO, os.sched_param(rt_priority))
                info["scheduling"] = f"SCHED_FIFO {rt_priority}"
            except (OSError, AttributeError) as exc:
                info["scheduling"] = f"default ({exc})"
        next_t = time.perf_counter()
        end = next_t + seconds
        while next_t < end:
            next_t += period
            remaining = next_t - time.perf_counter()
            if remaining > spin:
                time.sleep(remaining - spin)
            while time.perf_counter() < next_t:
                pass
            late.append(time.perf_counter() - next_t)
    t = threading.Thread(target=body)
    t.start()
    t.join()
    return {"lateness_ms": summarize(np.array(late)), **info, "seconds": seconds}


def run_one(name: str, policy, cfg, domain: int, seconds: float, loop_overrides: dict | None = None,
            inference_spec: dict | None = None) -> dict:
    from robolearn.deploy import ros_msgs as M
    from robolearn.deploy.dds import DdsBus
    from robolearn.deploy.dds_node import DdsNode

    node = DdsNode(cfg, policy, bus=DdsBus(domain), loop_overrides=loop_overrides, inference_spec=inference_spec)
    node.core.latency_log = {}
    probe = DdsBus(domain)
    received: list[tuple[tuple[int, int], float]] = []
    lock = threading.Lock()

    def on_cmd(msg):
        t = time.time()
        with lock:
            received.append(((msg.header.stamp.sec, msg.header.stamp.nanosec), t))
    probe.reader(cfg.trajectory_topic, M.JointTrajectory, on_cmd)
    node.start()
    deadline = time.time() + 30
    while node.loop.latest_state() is None or "object_pose" not in node.loop.latest_state().extras:
        if time.time() > deadline:
            node.stop()
            raise RuntimeError("no joint states / object pose from the sim robot within 30 s")
        time.sleep(0.05)
    # statistics start when the loop is enabled: reset them
    from robolearn.deploy.stats import LoopStats

    node.loop.stats = LoopStats(node.loop.cfg.period)
    node.loop.set_enabled(True)
    time.sleep(seconds)
    node.stop()
    time.sleep(0.1)
    rep = node.status()
    with lock:
        pairs = list(received)
    log = node.core.latency_log
    e2e = np.array([t - log[k] for k, t in pairs if k in log and log[k] > 0])
    transit = np.array([t - (k[0] + k[1] * 1e-9) for k, t in pairs])
    from robolearn.deploy.stats import summarize

    result = {
        "policy": name, "seconds": seconds, "command_hz": node.loop.cfg.command_hz,
        "ticks": rep["ticks"], "missed_deadlines": rep["missed_deadlines"], "jitter_ms": rep["jitter_ms"],
        "tick_work_ms": rep["tick_work_ms"], "inference_ms": rep["inference_ms"], "queue_depth": rep["queue_depth"],
        "queue_dry_ticks": rep["queue_dry_ticks"], "stale_obs_ticks": rep["stale_obs_ticks"],
        "obs_age_ms": rep["obs_age_ms"], "end_to_end_ms": summarize(e2e), "command_transit_ms": summarize(transit),
        "commands_published": rep["published"], "commands_received_by_probe": len(pairs),
        "safety": rep["safety"], "dropped": rep["dropped"], "scheduling": rep["scheduling"],
    }
    probe.close()
    node.bus.close()
    return result


def check_flags(args) -> None:
    """Validate the numbers before a robot process is started, each error naming its flag."""
    if not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.domain is not None and not 0 <= args.domain <= 232:
        raise ValueError(f"--domain must be a DDS domain id in 0..232, got {args.domain}")
    if not 0 <= args.rt_priority <= 99:
        raise ValueError(f"--rt-priority must be in 0..99 (0: no real-time priority), got {args.rt_priority}")
    if not -20 <= args.inference_nice <= 19:
        raise ValueError(f"--inference-nice must be in -20..19, got {args.inference_nice}")


def run(args) -> int:
    from robolearn.bench.common import machine_info, write_json
    from robolearn.deploy.dds import free_domain_id, loopback_config, use_loopback
    from robolearn.deploy.synthetic_policies import NAMES, build_synthetic_policies
    from robolearn.hardware.robot_config import RobotConfig

    check_flags(args)
    sys.setswitchinterval(0.0005)
    use_loopback()
    cfg = RobotConfig.load(args.robot)
    if cfg.command_interface != "trajectory":
        raise ValueError("bench loop measures the JointTrajectory path: use a robot config with command_interface trajectory")
    names = [n for n in args.policies.split(",") if n]
    unknown = [n for n in names if n not in NAMES]
    if unknown:  # checked here too: with --inference process the child would only report it after startup
        raise ValueError(f"--policies: unknown policy {unknown[0]!r}; use {', '.join(NAMES)}")
    if args.inference == "thread":
        policies = build_synthetic_policies(names, checkpoint=args.checkpoint, recipe=args.recipe, threads=args.threads)
    else:  # the child process builds them from the spec
        policies = {n: None for n in names}
    domain = args.domain if args.domain is not None else free_domain_id(os.getpid())
    results = []
    for name in names:
        env = dict(os.environ, CYCLONEDDS_URI=os.environ.get("CYCLONEDDS_URI", loopback_config()))
        robot = subprocess.Popen([sys.executable, "-m", "robolearn.cli", "sim-robot", "--env", args.env, "--robot",
                                  args.robot, "--domain", str(domain), "--seconds", str(args.seconds + 40)],
                                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            print(f"bench loop: {name} for {args.seconds:.0f} s at {cfg.command_hz:.0f} Hz ...", flush=True)
            spec = None
            if args.inference == "process":
                spec = {"bench": name, "checkpoint": args.checkpoint, "recipe": args.recipe, "threads": args.threads}
            base = timer_baseline(min(5.0, args.seconds), 1.0 / cfg.command_hz, rt_priority=args.rt_priority)
            r = run_one(name, policies[name], cfg, domain, args.seconds,
                        dict(rt_priority=args.rt_priority, inference_nice=args.inference_nice), spec)
            r["inference_backend"] = args.inference
            r["bare_timer_baseline"] = base
        finally:
            robot.terminate()
            try:
                robot.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                robot.kill()
        results.append(r)
        j, inf, e = r["jitter_ms"], r["inference_ms"], r["end_to_end_ms"]
        print(f"  {name:12s} ticks {r['ticks']}  missed {r['missed_deadlines']}  jitter p50/p99/max "
              f"{j.get('p50', 0):.3f}/{j.get('p99', 0):.3f}/{j.get('max', 0):.3f} ms  inference p50/p99 "
              f"{inf.get('p50', 0):.2f}/{inf.get('p99', 0):.2f} ms  e2e p50/p99 {e.get('p50', 0):.2f}/"
              f"{e.get('p99', 0):.2f} ms  dry ticks {r['queue_dry_ticks']}  (bare timer p99 "
              f"{r['bare_timer_baseline']['lateness_ms'].get('p99', 0):.3f} ms)", flush=True)
    doc = {"benchmark": "controller loop, serve node vs sim robot over DDS loopback",
           "command": " ".join(["robolearn", "bench", "loop"] + sys.argv[3:]) if len(sys.argv) > 3 else "robolearn bench loop",
           "machine": machine_info(), "load_average": list(os.getloadavg()), "robot": cfg.name,
           "targets": {"missed_deadlines": 0, "jitter_p99_ms": 1.0}, "results": results}
    path = write_json(doc, args.out)
    print(f"wrote {path}")
    return 0
