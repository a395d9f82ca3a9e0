"""Camera images from the sim robot reach the policy observation as sensor_msgs/Image over loopback DDS."""
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cyclonedds")


class Recorder:
    def __init__(self):
        self.obs = []

    def reset(self):
        pass

    def act(self, obs):
        self.obs.append(obs)
        return np.zeros((4, 7))


@pytest.mark.parametrize("topic", ["/camera/{camera}/image_raw", "/camera/{camera}/image_raw/compressed"])
def test_images_flow_from_sim_robot_to_policy(topic):
    from robolearn.deploy.dds import DdsBus, free_domain_id
    from robolearn.deploy.dds_node import DdsNode
    from robolearn.deploy.sim_robot import SimRobot
    from robolearn.hardware.robot_config import RobotConfig

    root = Path(__file__).resolve().parents[1]
    cfg = dataclasses.replace(RobotConfig.load(root / "hardware/sim_arm.yaml"), cameras=("front",), image_topic=topic)
    domain = free_domain_id(os.getpid() + 58)
    robot = SimRobot("sim/peg_insert", cfg, cameras=("front",), image_hz=25, image_size=32, bus=DdsBus(domain))
    policy = Recorder()
    node = DdsNode(cfg, policy, bus=DdsBus(domain))
    node.start()

    def enable_when_images_arrive(status):
        state = node.loop.latest_state()
        if state is not None and "images" in state.extras:
            node.loop.set_enabled(True)
    try:
        # the robot renders with EGL, whose context belongs to this (main) thread: run it here
        robot.run(2.0, on_status=enable_when_images_arrive, status_every=0.1)
        assert policy.obs, f"no observation reached the policy ({node.loop.last_error})"
        obs = policy.obs[-1]
        img = obs["images"]["front"]
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and img.std() > 0
        assert obs["state"].shape == (15,)
        assert node.bus.received[topic.format(camera="front")] >= 1
        assert not node.bus.dropped
    finally:
        node.stop()
