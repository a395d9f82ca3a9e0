"""The node on the ROS-free DDS transport: NodeCore wired to a DdsBus."""
from __future__ import annotations

import time
from pathlib import Path

from robolearn.data.fsutil import atomic_write_json
from robolearn.deploy import ros_msgs as M
from robolearn.deploy.dds import DdsBus
from robolearn.deploy.node import NodeCore
from robolearn.deploy.ros_io import dds_messages
from robolearn.hardware.robot_config import RobotConfig


class DdsNode:
    def __init__(self, cfg: RobotConfig, policy, domain_id: int = 0, loop_overrides: dict | None = None,
                 bus: DdsBus | None = None, **core_kwargs):
        self.cfg = cfg
        self.bus = bus or DdsBus(domain_id)
        cmd_type = M.JointTrajectory if cfg.command_interface == "trajectory" else M.Float64MultiArray
        self.core = NodeCore(cfg, policy, lambda msg: None, dds_messages(), loop_overrides, **core_kwargs)
        self.writer = self.bus.writer(self.core.command_topic, cmd_type)
        self.core._publish_msg = self.writer.write
        b = self.bus
        b.reader(cfg.joint_states_topic, M.JointState, self.core.on_joint_state)
        b.reader(cfg.enable_topic, M.Bool, self.core.on_enable)
        b.reader(cfg.estop_topic, M.Bool, self.core.on_estop)
        if cfg.object_pose_topic:
            b.reader(cfg.object_pose_topic, M.PoseStamped, self.core.on_object_pose)
        for cam, topic in self.core.image_topics().items():
            typ = M.CompressedImage if self.core.is_compressed(topic) else M.Image
            b.reader(topic, typ, lambda msg, cam=cam: self.core.on_image(cam, msg))

    @property
    def loop(self):
        return self.core.loop

    def start(self) -> "DdsNode":
        self.loop.start()
        return self

    def stop(self) -> None:
        self.loop.stop()

    def status(self) -> dict:
        rep = self.loop.report()
        rep.update(transport="dds", domain=self.bus.domain_id, command_topic=self.core.command_topic,
                   received=dict(self.bus.received), dropped=dict(self.bus.dropped),
                   drop_reasons=dict(self.bus.last_error), enabled=self.loop.filter.enabled,
                   estopped=self.loop.filter.estopped, time=time.time())
        return rep


def write_json_atomic(path: str | Path, data: dict) -> None:
    """The ``--status-file`` writer of ``serve`` and ``sim-robot``: one JSON snapshot, replaced atomically.

    Readers (tests, dashboards) never see a torn file. Not fsync'd: it is rewritten several times a
    second, from the sim-robot's physics loop too, where an fsync stall would delay the loop, and a
    stale snapshot after a power loss is harmless.
    """
    atomic_write_json(path, data, durable=False, indent=2, sort_keys=True, default=float)
