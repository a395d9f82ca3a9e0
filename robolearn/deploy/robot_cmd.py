"""``robolearn robot enable|disable|estop|release --robot sim_arm --domain N``: steer a running ``serve``.

Why: ``serve`` starts disabled and listens for std_msgs/Bool on the robot config's ``enable_topic`` and
``estop_topic``; without this command a user without ROS 2 had to write a DDS publisher to start it.
The messages go out over the same DDS bus (robolearn.deploy.dds) with the QoS ``serve``'s readers
accept (best-effort readers match our reliable writer). The topics are volatile (a message sent before
``serve`` subscribes is lost), so the command waits until a subscriber is matched and fails otherwise.

What the node does with each (robolearn/deploy/safety.py):

* ``enable``  -> ``true`` on enable_topic: run the policy. Ignored while the e-stop is latched.
* ``disable`` -> ``false`` on enable_topic: hold position, policy stopped.
* ``estop``   -> ``true`` on estop_topic: latch the e-stop, drop queued actions, hold now.
* ``release`` -> ``false`` on estop_topic: clear the latch. The node stays DISABLED; ``enable`` again.
"""
from __future__ import annotations

import argparse
import sys
import time

ACTIONS = {  # action -> (config attribute of the topic, value, what the node does)
    "enable": ("enable_topic", True, "enabled (ignored while the e-stop is latched: `robot release` first)"),
    "disable": ("enable_topic", False, "disabled: the arm holds position"),
    "estop": ("estop_topic", True, "e-stopped: latched until `robot release`, then `robot enable`"),
    "release": ("estop_topic", False, "e-stop released: the node stays disabled until `robot enable`"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=tuple(ACTIONS), help="enable | disable | estop | release (clears the e-stop)")
    p.add_argument("--robot", default="sim_arm",
                   help="robot config naming the topics: a shipped name (sim_arm, ...) or a YAML path")
    p.add_argument("--domain", type=int, default=0, help="DDS domain id of the serve node")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for a serve node to subscribe")
    p.add_argument("--no-loopback", action="store_true", help="do not confine DDS to loopback")


def send(action: str, cfg, domain: int, wait: float = 5.0, loopback: bool = True) -> int:
    """Publish the action's Bool; return how many subscribers were matched (0 = nobody listened)."""
    from robolearn.deploy import ros_msgs as M
    from robolearn.deploy.dds import DdsBus

    attr, value, _ = ACTIONS[action]
    bus = DdsBus(domain, loopback=loopback)
    try:
        writer = bus.writer(getattr(cfg, attr), M.Bool)
        deadline = time.monotonic() + wait
        while writer.matched() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        matched = writer.matched()
        if matched:
            time.sleep(0.1)  # let discovery finish on the reader's side too before the first sample
            for _ in range(5):  # serve's readers are best-effort: repeat (the message is idempotent)
                writer.write(M.Bool(data=value))
                time.sleep(0.02)
            time.sleep(0.1)  # let the last sample leave before the participant is deleted
        return matched
    finally:
        bus.close()


def run(args) -> int:
    from robolearn.hardware.robot_config import RobotConfig

    if args.wait < 0:
        raise ValueError(f"--wait must be >= 0, got {args.wait}")
    cfg = RobotConfig.load(args.robot)
    attr, value, effect = ACTIONS[args.action]
    topic = getattr(cfg, attr)
    matched = send(args.action, cfg, args.domain, args.wait, loopback=not args.no_loopback)
    if not matched:
        print(f"robolearn: error: no serve node subscribed to {topic} on DDS domain {args.domain} within "
              f"{args.wait:g} s (is `robolearn serve --robot {args.robot} --domain {args.domain}` running?)",
              file=sys.stderr)
        return 1
    print(f"robot {args.action}: sent {str(value).lower()} on {topic} (DDS domain {args.domain}, "
          f"{matched} subscriber(s)); {cfg.name} {effect}", flush=True)
    return 0
