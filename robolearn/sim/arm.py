"""A 7-joint arm with a parallel-jaw gripper, a table and two cameras, built from primitives.

The scene is generated with ``dm_control.mjcf`` so tasks can add their objects to the same
root before compiling. Geometry is a simplified Panda-like chain (alternating z / y axes):
no meshes, so nothing is downloaded and everything ships inside the package.

Control: a mocap body is welded to the hand. The weld is MuJoCo's soft equality constraint,
i.e. a task-space spring-damper solved inside every physics step: a Cartesian impedance
controller running at physics rate with no Python in the inner loop. The arm also carries
joint position actuators (disabled in Cartesian mode) so the same model can act as a
ros2_control robot with a position interface.
"""
from __future__ import annotations

from dataclasses import dataclass

from dm_control import mjcf

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
FINGER_RANGE = (0.0, 0.04)  # each finger's travel: 0 closed, 0.04 fully open (8 cm jaw)
# Joint limits of the sim arm (radians); the robot config for the sim mirrors these.
JOINT_LOWER = (-2.9, -1.8, -2.9, 0.0, -2.9, -0.5, -2.9)
JOINT_UPPER = (2.9, 1.8, 2.9, 2.9, 2.9, 3.0, 2.9)
# A tool-down posture used to seed IK and as the null-space rest posture.
HOME_QPOS = (0.0, 0.35, 0.0, 1.9, 0.0, 0.9, 0.0)
TCP_OFFSET = 0.105  # hand origin -> fingertip centre, along the tool axis


@dataclass(frozen=True)
class SceneOptions:
    timestep: float = 0.002
    weld_timeconst: float = 0.01
    finger_kp: float = 300.0
    arm_kp: float = 400.0
    table_height: float = 0.0


def build_arm_scene(opts: SceneOptions = SceneOptions()) -> mjcf.RootElement:
    root = mjcf.RootElement(model="robolearn_arm")
    root.compiler.angle = "radian"
    root.option.timestep = opts.timestep
    root.option.cone = "elliptic"
    root.option.impratio = 10
    root.option.integrator = "implicitfast"
    # Rendering cost on a CPU rasteriser is dominated by shadows and multisampling.
    root.visual.quality.shadowsize = 0
    root.visual.quality.offsamples = 0
    root.visual.__getattr__("global").offwidth = 640
    root.visual.__getattr__("global").offheight = 480
    root.visual.headlight.ambient = (0.4, 0.4, 0.4)
    root.visual.headlight.diffuse = (0.6, 0.6, 0.6)

    root.asset.add("texture", name="grid", type="2d", builtin="checker", rgb1=(0.85, 0.85, 0.82),
                   rgb2=(0.75, 0.75, 0.72), width=256, height=256)
    root.asset.add("material", name="table", texture="grid", texrepeat=(6, 6), reflectance=0.0)
    root.default.geom.solref = (0.005, 1)
    root.default.joint.damping = 2.0
    root.default.joint.armature = 0.05

    wb = root.worldbody
    wb.add("light", name="top", pos=(0.5, 0, 1.5), dir=(0, 0, -1), diffuse=(0.6, 0.6, 0.6), castshadow=False)
    wb.add("geom", name="floor", type="plane", size=(2, 2, 0.1), pos=(0, 0, -0.75), rgba=(0.3, 0.3, 0.35, 1))
    wb.add("geom", name="table", type="box", size=(0.45, 0.5, 0.025), pos=(0.5, 0, opts.table_height - 0.025),
           material="table", friction=(1, 0.005, 0.0001))
    wb.add("camera", name="front", pos=(1.0, 0.0, 0.33), xyaxes=(0, 1, 0, -0.45, 0, 0.89), fovy=45)

    base = wb.add("body", name="base", pos=(0, 0, opts.table_height))
    base.add("geom", name="base_geom", type="cylinder", size=(0.07, 0.05), pos=(0, 0, 0.05), rgba=(0.2, 0.2, 0.22, 1))
    # (axis, length of the link that follows, radius)
    chain = [
        ((0, 0, 1), 0.0, 0.06),
        ((0, 1, 0), 0.38, 0.05),
        ((0, 0, 1), 0.0, 0.045),
        ((0, 1, 0), 0.36, 0.045),
        ((0, 0, 1), 0.0, 0.04),
        ((0, 1, 0), 0.08, 0.04),
        ((0, 0, 1), 0.0, 0.035),
    ]
    parent = base
    offsets = [(0, 0, 0.1), (0, 0, 0.12), (0, 0, 0.0), (0, 0, 0.0), (0, 0, 0.0), (0, 0, 0.0), (0, 0, 0.0)]
    link_lengths = [0.0] + [c[1] for c in chain]
    for i, ((axis, length, radius), name) in enumerate(zip(chain, ARM_JOINTS)):
        pos = offsets[i] if i < 2 else (0, 0, link_lengths[i])
        body = parent.add("body", name=f"link{i + 1}", pos=pos, gravcomp=1)
        body.add("joint", name=name, type="hinge", axis=axis, range=(JOINT_LOWER[i], JOINT_UPPER[i]),
                 limited=True)
        seg = max(length, 0.06)
        body.add("geom", name=f"link{i + 1}_geom", type="capsule", fromto=(0, 0, 0, 0, 0, seg), size=(radius,),
                 rgba=(0.92, 0.92, 0.95, 1) if i % 2 == 0 else (0.55, 0.6, 0.7, 1), mass=1.0,
                 contype=0 if i < 3 else 1, conaffinity=0 if i < 3 else 1)
        parent = body

    hand = parent.add("body", name="hand", pos=(0, 0, 0.06), gravcomp=1)
    hand.add("geom", name="palm", type="box", size=(0.02, 0.055, 0.02), pos=(0, 0, 0.02), rgba=(0.25, 0.25, 0.28, 1),
             mass=0.3)
    hand.add("site", name="tcp", pos=(0, 0, TCP_OFFSET), size=(0.006,), rgba=(1, 0, 0, 0.6), group=4)
    hand.add("camera", name="wrist", pos=(0.06, 0, 0.03), xyaxes=(0, -1, 0, -1, 0, -0.3), fovy=75)
    for side, sign in (("left", 1), ("right", -1)):
        finger = hand.add("body", name=f"finger_{side}_body", pos=(0, 0, 0.04), gravcomp=1)
        finger.add("joint", name=f"finger_{side}", type="slide", axis=(0, sign, 0), range=FINGER_RANGE,
                   limited=True, damping=5.0, armature=0.01)
        finger.add("geom", name=f"finger_{side}_geom", type="box", size=(0.012, 0.006, 0.035),
                   pos=(0, sign * 0.006, 0.065), rgba=(0.3, 0.3, 0.33, 1), mass=0.05,
                   friction=(1.5, 0.02, 0.0005), condim=4, solref=(0.004, 1), priority=1)

    mocap = wb.add("body", name="ee_target", mocap=True, pos=(0.5, 0, 0.3))
    mocap.add("site", name="ee_target_site", size=(0.01,), rgba=(0, 1, 0, 0.3), group=4)
    root.equality.add("weld", name="ee_weld", body1="ee_target", body2="hand", relpose=(0, 0, 0, 1, 0, 0, 0),
                      solref=(opts.weld_timeconst, 1), solimp=(0.95, 0.99, 0.001))

    for name in ARM_JOINTS:
        root.actuator.add("position", name=f"{name}_pos", joint=name, kp=opts.arm_kp, kv=40.0,
                          ctrlrange=(JOINT_LOWER[ARM_JOINTS.index(name)], JOINT_UPPER[ARM_JOINTS.index(name)]))
    for name in FINGER_JOINTS:
        root.actuator.add("position", name=f"{name}_pos", joint=name, kp=opts.finger_kp, kv=10.0,
                          ctrlrange=FINGER_RANGE, forcerange=(-40, 40))
    # The arm never collides with itself (a real controller keeps it out of self-collision).
    arm_bodies = [f"link{i}" for i in range(1, 8)] + ["hand", "finger_left_body", "finger_right_body"]
    for i, a in enumerate(arm_bodies):
        for b in arm_bodies[i + 1:]:
            root.contact.add("exclude", body1=a, body2=b)
    return root
