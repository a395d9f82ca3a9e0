"""``robolearn bench record``: the record loop's timing with a replayed key stream on a real terminal.

What runs is ``robolearn record``'s own loop (Recorder) on a real env, reading the keyboard teleop
device through a real pseudo-terminal: a feeder thread types a replayed key stream into the pty's
master side (start, motion keys at random times, a success mark and a new start every few seconds,
quit at the end), exactly as a person's keyboard would reach the terminal. Measured:

- tick jitter (how late each recorded tick woke against its absolute schedule) p50/p99/max and the
  number of missed ticks (ticks skipped because a tick woke more than a period late);
- event-to-command latency: from a key's bytes being written to the terminal to the poll whose
  TeleopCommand carries it; and event-to-env-step: to the env.step call that executes it. Both must
  stay within one control period (an event waits at most for the next tick);
- env step time, to say how much of the period the env itself uses.

The episode store goes to a temporary folder (``--keep DIR`` keeps it).
"""
from __future__ import annotations

import argparse
import os
import pty
import tempfile
import threading
import time

import numpy as np

MOTION_KEYS = b"wsadrfjl"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=60.0, help="how long the loop runs (s)")
    p.add_argument("--env", default="sim/pick_cube")
    p.add_argument("--cameras", default="", help="comma-separated cameras (frames are rendered every tick)")
    p.add_argument("--key-rate", type=float, default=8.0, help="motion keys per second in the replayed stream")
    p.add_argument("--episode-s", type=float, default=3.0, help="mark and restart an episode this often (s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the replayed key stream")
    p.add_argument("--keep", default=None, help="keep the recorded episode store in this folder")
    p.add_argument("--out", default="runs/bench/record.json")


def key_schedule(seconds: float, key_rate: float, episode_s: float, seed: int = 0) -> list[tuple[float, bytes]]:
    """(time, one key) pairs: Enter, random motion keys, and 'g' + Enter every ``episode_s``; 'q' at the end."""
    rng = np.random.default_rng(seed)
    out = [(0.2, b"\r")]
    t, next_mark = 0.3, 0.2 + episode_s
    while t < seconds:
        t += float(rng.exponential(1.0 / key_rate))
        if t >= next_mark:
            out += [(next_mark, b"g"), (next_mark + 0.15, b"\r")]
            next_mark += episode_s
        if t < seconds:
            out.append((t, bytes([MOTION_KEYS[rng.integers(len(MOTION_KEYS))]])))
    out.sort(key=lambda r: r[0])
    out.append((seconds, b"q"))
    return out


def _pct(values, unit: float = 1e3) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = np.asarray(values) * unit
    return {"n": int(v.size), "p50": round(float(np.percentile(v, 50)), 3), "p99": round(float(np.percentile(v, 99)), 3),
            "max": round(float(v.max()), 3)}


def run_bench(seconds: float, env_name: str = "sim/pick_cube", cameras: str = "", key_rate: float = 8.0,
              episode_s: float = 3.0, seed: int = 0, keep: str | None = None) -> dict:
    from robolearn.hardware.teleop import KeyboardDevice, load_teleop_config
    from robolearn.hardware.teleop.keyboard import TerminalReader
    from robolearn.train.record_cmd import Recorder, RecordConfig

    import robolearn
    from robolearn.data.episode_store import EpisodeStore

    if not seconds > 0:
        raise ValueError(f"--seconds must be positive, got {seconds}")
    if not key_rate > 0 or not episode_s > 0.5:
        raise ValueError("--key-rate must be positive and --episode-s above 0.5 s")
    clock = time.perf_counter
    schedule = key_schedule(seconds, key_rate, episode_s, seed)
    tmp = None if keep else tempfile.TemporaryDirectory(prefix="robolearn-bench-record-")
    out_dir = keep or os.path.join(tmp.name, "store")
    cfg = RecordConfig(env=env_name, teleop="keyboard", episodes=10**6, out=out_dir, operator="bench",
                       seed=0, cameras=cameras, max_steps=10**6, preview="off")
    overrides = {"max_episode_steps": 10**6} if env_name.startswith("sim/") else {}
    if cfg.cameras:
        overrides.update(cameras=list(cfg.cameras), image_size=cfg.image_size)
    env = robolearn.make(env_name, **overrides)
    master, slave = pty.openpty()
    device = KeyboardDevice(load_teleop_config("keyboard"), TerminalReader(slave), clock=clock)
    written: list[float] = []
    trace: list = []
    stop = threading.Event()

    def feeder(t0: float) -> None:
        for t, key in schedule:
            delay = t0 + t - clock()
            if delay > 0 and stop.wait(delay):
                return
            written.append(clock())
            os.write(master, key)

    try:
        store = EpisodeStore(out_dir)
        rec = Recorder(env, store, device, cfg, out=None, clock=clock, trace=trace)
        thread = threading.Thread(target=feeder, args=(clock(),), daemon=True)
        thread.start()
        wall0 = clock()
        summary = rec.run()
        wall = clock() - wall0
        stop.set()
        thread.join(timeout=2)
    finally:
        device.close()
        env.close()
        os.close(master)
        os.close(slave)
    period = 1.0 / float(env.metadata["render_fps"])
    seen = device.keys_seen  # (poll time, key) in the order read: the i-th key read is the i-th written
    n = min(len(seen), len(written))
    # The recorded tick each key was read in: woke <= poll time <= polled (trace rows are in time order).
    wokes = np.array([row[0] for row in trace]) if trace else np.zeros(0)
    motion = {chr(k) for k in MOTION_KEYS}
    to_command, to_step, control = [], [], []
    for i in range(n):
        t_read, key = seen[i]
        j = int(np.searchsorted(wokes, t_read, side="right")) - 1
        row = trace[j] if j >= 0 and t_read <= trace[j][1] else None
        if key in motion and row is not None and row[2] is not None:
            to_command.append(t_read - written[i])
            to_step.append(row[2] - written[i])
        elif key not in motion:
            control.append(t_read - written[i])
    step_times = [end - start for _w, _p, start, end, _e in trace if start is not None]
    loop = summary["loop"]
    cmd_stats, step_stats = _pct(to_command), _pct(to_step)
    result = {
        "what": "robolearn record loop on a pty with a replayed key stream",
        "env": env_name, "cameras": list(cfg.cameras), "seconds": round(wall, 2),
        "control_hz": round(1.0 / period, 3), "period_ms": round(period * 1e3, 3),
        "recorded_ticks": loop["ticks"], "missed_ticks": loop["missed_ticks"],
        "jitter_ms": {"p50": round(loop["jitter_p50_ms"], 3), "p99": round(loop["jitter_p99_ms"], 3),
                      "max": round(loop["jitter_max_ms"], 3)},
        "events_written": len(written), "events_read": len(seen),
        "event_to_command_ms": cmd_stats,   # motion keys while recording: written -> TeleopCommand
        "event_to_env_step_ms": step_stats,  # ... -> the env.step call that executes it
        "control_key_to_read_ms": _pct(control),  # Enter / g / q, also while an episode is being written
        "env_step_ms": _pct(step_times),
        # A key waits at most for the next tick, so the bound is one period plus that tick's wake-up jitter;
        # the p99 is held to the period itself.
        "latency_p99_within_one_period": bool(step_stats.get("p99", 0) <= period * 1e3),
        "latency_max_within_period_plus_jitter": bool(step_stats.get("max", 0) <= period * 1e3 + loop["jitter_max_ms"]),
        "episodes_saved": summary["episodes"],
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if tmp is not None:
        tmp.cleanup()
    return result


def format_result(r: dict) -> str:
    c, s = r["event_to_command_ms"], r["event_to_env_step_ms"]
    return "\n".join([
        f"bench record: {r['env']} at {r['control_hz']:g} Hz for {r['seconds']} s, {r['recorded_ticks']} recorded ticks, "
        f"{r['episodes_saved']} episodes",
        f"  tick jitter p50 {r['jitter_ms']['p50']:.3f} ms, p99 {r['jitter_ms']['p99']:.3f} ms, max "
        f"{r['jitter_ms']['max']:.3f} ms; missed ticks {r['missed_ticks']}",
        f"  event -> command p50 {c.get('p50', 0):.1f} ms, p99 {c.get('p99', 0):.1f} ms, max {c.get('max', 0):.1f} ms; "
        f"event -> env.step p99 {s.get('p99', 0):.1f} ms, max {s.get('max', 0):.1f} ms "
        f"(period {r['period_ms']:.0f} ms: p99 {'within' if r['latency_p99_within_one_period'] else 'OVER'} one period)",
        f"  env step p50 {r['env_step_ms'].get('p50', 0):.2f} ms, p99 {r['env_step_ms'].get('p99', 0):.2f} ms",
    ])


def run(args) -> int:
    from robolearn.bench.common import machine_info, write_json

    print(f"bench record: the record loop on {args.env} for {args.seconds:g} s with a replayed key stream "
          f"({args.key_rate:g} keys/s) on a pseudo-terminal", flush=True)
    result = run_bench(args.seconds, args.env, args.cameras, args.key_rate, args.episode_s, args.seed, args.keep)
    result["machine"] = machine_info()
    path = write_json(result, args.out)
    print(format_result(result))
    print(f"  wrote {path}")
    return 0
