"""Hand-declared ROS 2 IDL structs vs rosbags' independent CDR serializer and RIHS01 hashes,
plus their ROS 2 naming and QoS on a real loopback DDS participant."""
import os
import time

import numpy as np
import pytest

pytest.importorskip("cyclonedds")
rosbags_typesys = pytest.importorskip("rosbags.typesys")

from robolearn.deploy import ros_msgs as M  # noqa: E402
from robolearn.deploy.ros_hash import rihs01, type_description, user_data  # noqa: E402

_NP = {"float64": np.float64, "uint8": np.uint8, "uint32": np.uint32, "int32": np.int32}


@pytest.fixture(scope="module", params=["ROS2_HUMBLE", "ROS2_JAZZY"])
def store(request):
    return rosbags_typesys.get_typestore(getattr(rosbags_typesys.Stores, request.param))


def to_rosbags(msg, store):
    """Build the rosbags object with the same field values (field types from our FIELDS table)."""
    name = M.ROS_NAME[type(msg)]
    kwargs = {}
    for field, typ, seq in M.FIELDS[name]:
        val = getattr(msg, field)
        if "/" in typ:
            kwargs[field] = [to_rosbags(v, store) for v in val] if seq else to_rosbags(val, store)
        elif seq and typ != "string":
            kwargs[field] = np.array(list(val), dtype=_NP[typ])
        else:
            kwargs[field] = val
    return store.types[name](**kwargs)


def _header(sec=1700000000, nsec=123456789, frame="base_link"):
    return M.Header(stamp=M.Time(sec=sec, nanosec=nsec), frame_id=frame)


SAMPLES = [
    M.Time(sec=-5, nanosec=7),
    M.Duration(sec=2, nanosec=500_000_000),
    _header(),
    M.Bool(data=True),
    M.JointState(header=_header(frame=""), name=[f"joint{i}" for i in range(1, 8)],
                 position=[0.1 * i for i in range(7)], velocity=[-0.5] * 7, effort=[]),
    M.JointState(),  # all empty
    M.Image(header=_header(frame="cam"), height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
            data=bytes(range(18))),
    M.CompressedImage(header=_header(), format="jpeg", data=b"\xff\xd8\xff\xe0abc"),
    M.JointTrajectory(header=_header(sec=0, nsec=0, frame=""), joint_names=["a", "bb", "ccc"],
                      points=[M.JointTrajectoryPoint(positions=[1.0, 2.0, 3.0], velocities=[],
                                                     time_from_start=M.Duration(sec=0, nanosec=10_000_000)),
                              M.JointTrajectoryPoint(positions=[1.5, 2.5, 3.5], velocities=[0.1, 0.2, 0.3],
                                                     accelerations=[0.0] * 3, effort=[1.0],
                                                     time_from_start=M.Duration(sec=1, nanosec=0))]),
    M.Float64MultiArray(layout=M.MultiArrayLayout(dim=[M.MultiArrayDimension(label="joints", size=7, stride=7)],
                                                  data_offset=0), data=[0.25 * i for i in range(7)]),
    M.Float64MultiArray(data=[1.0, -2.0]),
    M.PoseStamped(header=_header(frame="world"), pose=M.Pose(position=M.Point(x=0.5, y=-0.1, z=0.05),
                                                              orientation=M.Quaternion(x=0.0, y=0.0, z=0.38, w=0.92))),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_cdr_bytes_equal_rosbags(msg, store):
    name = M.ROS_NAME[type(msg)]
    ours = msg.serialize()
    theirs = bytes(store.serialize_cdr(to_rosbags(msg, store), name))
    assert ours[:2] == b"\x00\x01"  # CDR little endian = XCDR1 encapsulation
    assert ours == theirs, f"{name}: CDR differs\nours   {ours.hex()}\ntheirs {theirs.hex()}"
    # and each side decodes the other's bytes
    assert type(msg).deserialize(theirs) == type(msg).deserialize(ours)
    back = store.deserialize_cdr(ours, name)
    assert bytes(store.serialize_cdr(back, name)) == ours


def test_every_message_is_covered():
    covered = {M.ROS_NAME[type(m)] for m in SAMPLES}
    nested_only = {"std_msgs/msg/MultiArrayDimension", "std_msgs/msg/MultiArrayLayout",
                   "trajectory_msgs/msg/JointTrajectoryPoint", "geometry_msgs/msg/Point",
                   "geometry_msgs/msg/Quaternion", "geometry_msgs/msg/Pose"}
    assert set(M.ROS_NAME.values()) - covered == nested_only


@pytest.mark.parametrize("name", sorted(M.FIELDS))
def test_rihs01_equals_rosbags(name):
    store = rosbags_typesys.get_typestore(rosbags_typesys.Stores.ROS2_JAZZY)
    assert rihs01(name) == store.hash_rihs01(name)
    # our field table is the same definition rosbags knows
    ours = [(f, t) for f, t, _ in M.FIELDS[name]]
    theirs = [f for f, _ in store.fielddefs[name][1]]
    assert [f for f, _ in ours] == theirs


def test_known_hash_and_user_data():
    # JointState's hash as published by ROS 2 Jazzy (rosidl-generated)
    assert rihs01("sensor_msgs/msg/JointState") == \
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"
    assert user_data("std_msgs/msg/Bool") == f"typehash={rihs01('std_msgs/msg/Bool')};".encode()
    refs = [t["type_name"] for t in type_description("trajectory_msgs/msg/JointTrajectory")["referenced_type_descriptions"]]
    assert refs == sorted(refs) == ["builtin_interfaces/msg/Duration", "builtin_interfaces/msg/Time",
                                    "std_msgs/msg/Header", "trajectory_msgs/msg/JointTrajectoryPoint"]
    with pytest.raises(KeyError, match="no field definition"):
        rihs01("foo_msgs/msg/Nope")


def test_dds_type_and_topic_names():
    from robolearn.deploy.dds import dds_topic_name

    assert M.JointState.__idl_typename__ == "sensor_msgs::msg::dds_::JointState_"
    assert M.Duration.__idl_typename__ == "builtin_interfaces::msg::dds_::Duration_"
    assert dds_topic_name("/joint_states") == "rt/joint_states"
    assert dds_topic_name("/fr3/joint_trajectory_controller/joint_trajectory") == \
        "rt/fr3/joint_trajectory_controller/joint_trajectory"
    for bad in ("joint_states", "/a//b", "/a/", ""):
        with pytest.raises(ValueError, match="absolute name"):
            dds_topic_name(bad)


def test_loopback_roundtrip_and_qos():
    from cyclonedds.core import Policy

    from robolearn.deploy.dds import DdsBus, free_domain_id

    domain = free_domain_id(os.getpid() + 53)
    pub, sub = DdsBus(domain), DdsBus(domain)
    assert "lo" in os.environ["CYCLONEDDS_URI"] and "<AllowMulticast>false" in os.environ["CYCLONEDDS_URI"]
    got = []
    sub.reader("/joint_states", M.JointState, got.append)
    w = pub.writer("/joint_states", M.JointState)
    qos = w.dw.get_qos()
    assert isinstance(qos[Policy.Reliability], Policy.Reliability.Reliable)
    assert qos[Policy.Durability] == Policy.Durability.Volatile
    assert qos[Policy.Userdata].data == user_data("sensor_msgs/msg/JointState")
    rep = qos[Policy.DataRepresentation]  # plain CDR (XCDR1) only, as rmw_cyclonedds
    assert rep.use_cdrv0_representation and not rep.use_xcdrv2_representation
    rqos = sub._readers[0].get_qos()
    assert rqos[Policy.Reliability] == Policy.Reliability.BestEffort
    deadline = time.time() + 5
    while w.matched() == 0 and time.time() < deadline:
        time.sleep(0.01)
    sent = SAMPLES[4]
    for _ in range(3):
        w.write(sent)
        time.sleep(0.02)
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.01)
    assert got and got[0] == sent
    assert sub.received["/joint_states"] >= 1


def test_bus_teardown_is_deterministic_and_stops_callbacks():
    """Closing (or dropping) a bus deletes its entities at once, listeners first: no callback after
    close, and a remote writer vanishing afterwards cannot reach a freed listener (this used to
    segfault the test process from Cyclone's gc thread)."""
    import gc
    import weakref

    from robolearn.deploy.dds import DdsBus, free_domain_id

    domain = free_domain_id(os.getpid() + 71)
    pub, sub = DdsBus(domain), DdsBus(domain)
    got = []
    sub.reader("/joint_states", M.JointState, got.append)
    w = pub.writer("/joint_states", M.JointState)
    deadline = time.time() + 5
    while w.matched() == 0 and time.time() < deadline:
        time.sleep(0.01)
    w.write(SAMPLES[4])
    deadline = time.time() + 5
    while not got and time.time() < deadline:
        time.sleep(0.01)
    assert got
    sub.close()
    sub.close()  # idempotent
    assert sub.participant is None and not sub._readers
    n = len(got)
    for _ in range(3):
        w.write(SAMPLES[4])
        time.sleep(0.02)
    assert len(got) == n  # nothing delivered after close
    deadline = time.time() + 5
    while w.matched() > 0 and time.time() < deadline:  # the reader is really gone from the domain
        time.sleep(0.01)
    assert w.matched() == 0
    # a bus with a live reader is freed by reference counting alone (no bus <-> listener cycle)
    other = DdsBus(domain)
    other.reader("/joint_states", M.JointState, lambda msg: None)
    ref = weakref.ref(other)
    gc.disable()
    try:
        del other
        assert ref() is None
    finally:
        gc.enable()
    del pub  # the remote writer goes away after the readers: must not crash


def test_free_domain_id_skips_domains_in_use():
    from robolearn.deploy.dds import DdsBus, domain_in_use, free_domain_id

    d = free_domain_id(os.getpid() + 11)
    assert not domain_in_use(d)
    bus = DdsBus(d)  # noqa: F841  (holds the domain's discovery port while alive)
    assert domain_in_use(d)
    assert free_domain_id(d - 1) != d
