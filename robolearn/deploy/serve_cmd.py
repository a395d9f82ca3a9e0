"""``robolearn serve --checkpoint DIR --robot sim_arm --transport dds|rclpy``.

Runs a policy on the controller loop of a ROS 2 node. The node starts DISABLED: publish ``true`` on
the robot config's ``enable_topic`` (std_msgs/Bool) to start, ``true`` on ``estop_topic`` to stop
(e-stop latches until ``false`` is published and the node is enabled again).
"""
from __future__ import annotations

import argparse
import sys
import time

# Why: a serve with no robot on its domain used to sit silently disabled; after this long without
# a single joint state it says which topic and domain it listens on (once, on stderr).
NO_STATE_WARN_S = 3.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="checkpoint folder or run directory (BC or RL)")
    src.add_argument("--policy", help="path/to/file.py:Name, an object with reset() and act(obs) -> (H, A)")
    p.add_argument("--device", default="cpu",
                   help="auto|cpu|cuda|mps for the policy (default cpu: small nets at batch 1 are fastest there)")
    p.add_argument("--robot", default="sim_arm",
                   help="robot config: a shipped name (sim_arm, franka_fr3, ur5e) or a YAML path (default sim_arm)")
    p.add_argument("--transport", choices=("dds", "rclpy"), default="dds")
    p.add_argument("--domain", type=int, default=0, help="DDS domain id (dds transport)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0 = until Ctrl-C)")
    p.add_argument("--enable", action="store_true", help="start enabled instead of waiting for the enable topic")
    p.add_argument("--status-file", default="", help="write loop/safety/transport status JSON here (atomic)")
    p.add_argument("--status-every", type=float, default=0.25, help="status file period (s)")
    p.add_argument("--print-every", type=float, default=5.0, help="print loop statistics this often (s)")
    p.add_argument("--refill-threshold", type=int, default=None, help="policy steps left when the next chunk is requested")
    p.add_argument("--new-weight", type=float, default=None, help="weight of the new chunk on overlaps (1 = replace)")
    p.add_argument("--freeze", type=int, default=None, help="RTC-style: queued steps kept unchanged on merge")
    p.add_argument("--rt-priority", type=int, default=None,
                   help="run the control-loop thread SCHED_FIFO at this priority (1-99; needs CAP_SYS_NICE)")
    p.add_argument("--inference-nice", type=int, default=None, help="lower the inference thread's priority (0-19)")
    p.add_argument("--inference", choices=("process", "thread"), default="process",
                   help="run the policy in a child process (default: the loop keeps its GIL) or a thread")
    p.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads for inference")
    p.add_argument("--no-loopback", action="store_true", help="do not confine DDS to loopback")


def run(args) -> int:
    from robolearn.deploy.node import load_policy_object
    from robolearn.hardware.robot_config import RobotConfig

    sys.setswitchinterval(0.0005)  # the loop thread must get the GIL back quickly from inference
    _sigterm_as_interrupt()
    cfg = RobotConfig.load(args.robot)
    spec = policy = None
    if args.inference == "process" and args.transport == "dds":
        spec = {"checkpoint": args.checkpoint, "policy": args.policy, "threads": max(1, args.torch_threads),
                "device": args.device}
    else:
        if args.checkpoint:
            import torch

            torch.set_num_threads(max(1, args.torch_threads))
        policy = load_policy_object(args.checkpoint, args.policy, args.device)
    overrides = dict(refill_threshold=args.refill_threshold, new_weight=args.new_weight, freeze=args.freeze,
                     rt_priority=args.rt_priority, inference_nice=args.inference_nice)
    if args.transport == "rclpy":
        from robolearn.deploy.rclpy_node import run_rclpy

        return run_rclpy(cfg, policy, overrides, seconds=args.seconds, enable=args.enable)
    from robolearn.deploy.dds import DdsBus
    from robolearn.deploy.dds_node import DdsNode, write_json_atomic

    node = DdsNode(cfg, policy, loop_overrides=overrides, bus=DdsBus(args.domain, loopback=not args.no_loopback),
                   inference_spec=spec)
    node.start()
    if args.enable:
        node.loop.set_enabled(True)
    print(f"serve: {cfg.name} over DDS domain {args.domain}; commands -> {node.core.command_topic}; "
          f"{'ENABLED' if args.enable else 'disabled until ' + cfg.enable_topic + ' is true'}", flush=True)
    start = time.monotonic()
    next_status = next_print = start
    warned = False
    try:
        while args.seconds <= 0 or time.monotonic() - start < args.seconds:
            time.sleep(0.02)
            now = time.monotonic()
            if args.status_file and now >= next_status:
                write_json_atomic(args.status_file, node.status())
                next_status += args.status_every
            if not warned and now - start >= NO_STATE_WARN_S and not node.bus.received.get(cfg.joint_states_topic):
                warned = True
                print(f"serve: warning: no joint states on {cfg.joint_states_topic} (DDS domain {args.domain}) "
                      f"after {NO_STATE_WARN_S:g} s: is the robot (or `robolearn sim-robot --domain {args.domain}`) "
                      f"running on this domain?", file=sys.stderr, flush=True)
            if args.print_every > 0 and now >= next_print + args.print_every:
                print(f"serve [{node.loop.mode}] {node.loop.stats.format()}", flush=True)
                next_print = now
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
        if args.status_file:
            write_json_atomic(args.status_file, node.status())
    print(f"serve: done. {node.loop.stats.format()}", flush=True)
    print(f"serve: safety {node.loop.filter.counters.as_dict()} dropped {dict(node.bus.dropped)}", flush=True)
    return 0


def _sigterm_as_interrupt() -> None:
    """SIGTERM (systemd, launch, a test harness) shuts down like Ctrl-C: stats printed, children stopped."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
