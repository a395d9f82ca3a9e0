"""ForwardCommandController path (Float64MultiArray) over real loopback DDS, node and sim robot in one
process: commands stream, the robot moves, a malformed command is dropped by the robot, and when the
robot's joint states stop the node's own watchdog holds (that controller never times out by itself)."""
import dataclasses
import os
import threading
import time

import numpy as np
import pytest
from procs import wait_for

pytest.importorskip("cyclonedds")


class Up:
    def reset(self):
        pass

    def act(self, obs):
        a = np.zeros((4, 7))
        a[:, 2] = 0.4
        return a




def test_forward_interface_end_to_end():
    from pathlib import Path

    from robolearn.deploy import ros_msgs as M
    from robolearn.deploy.dds import DdsBus, free_domain_id
    from robolearn.deploy.dds_node import DdsNode
    from robolearn.deploy.sim_robot import SimRobot
    from robolearn.hardware.robot_config import RobotConfig

    root = Path(__file__).resolve().parents[1]
    cfg = dataclasses.replace(RobotConfig.load(root / "hardware/sim_arm.yaml"), command_interface="forward")
    domain = free_domain_id(os.getpid() + 57)
    robot = SimRobot("sim/peg_insert", cfg, bus=DdsBus(domain))
    node = DdsNode(cfg, Up(), bus=DdsBus(domain))
    probe = DdsBus(domain)
    wire, traj = [], []
    probe.reader(cfg.forward_topic, M.Float64MultiArray, lambda m: wire.append((time.monotonic(), list(m.data))))
    probe.reader(cfg.trajectory_topic, M.JointTrajectory, traj.append)
    bad_writer = probe.writer(cfg.forward_topic, M.Float64MultiArray)
    stop_robot = threading.Event()

    def run_robot():
        while not stop_robot.is_set():
            robot.run(0.05)
    t = threading.Thread(target=run_robot, daemon=True)
    t.start()
    node.start()
    try:
        wait_for(lambda: node.loop.latest_state() is not None, 5, "joint states")
        z0 = robot.robot.ee_pose()[0][2]
        node.loop.set_enabled(True)
        wait_for(lambda: robot.robot.ee_pose()[0][2] > z0 + 0.02, 8, "the arm to rise")
        assert robot.counts["forward"] > 10 and robot.counts["trajectory"] == 0 and traj == []
        assert all(len(d) == 8 for _, d in wire)
        # a malformed command: the robot drops and counts it, keeps its target and keeps running
        target = robot.target.copy()
        bad_writer.write(M.Float64MultiArray(data=[0.0, 1.0, 2.0]))
        wait_for(lambda: robot.bus.dropped.get(cfg.forward_topic, 0) >= 1, 3, "the robot to drop the bad command")
        assert "3 values for 8 joints" in robot.bus.last_error[cfg.forward_topic]
        assert np.all(np.abs(robot.target - target) < 0.1)
        # the robot stops publishing joint states: the node must hold within 3 periods of staleness
        stop_robot.set()
        t.join(2)
        t_stop = time.monotonic()
        time.sleep(0.2)
        after = [(tt, d) for tt, d in wire if tt > t_stop]
        assert node.loop.mode == "hold" and node.loop.stats.stale > 5
        last_state = node.loop.latest_state().received
        q = np.array([d[:7] for _, d in after])
        # the first command of the constant run (the hold) comes once the state is > 3 periods old:
        # by the next tick after that, plus scheduling slack
        first_hold = next(tt for (tt, _), a, b in zip(after[:-1], q[:-1], q[1:]) if np.array_equal(a, b))
        assert 3 * 0.01 <= first_hold - last_state <= 4 * 0.01 + 0.01
    finally:
        stop_robot.set()
        node.stop()
