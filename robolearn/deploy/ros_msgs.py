"""ROS 2 message types declared by hand as Cyclone DDS IDL structs, so the ROS 2 wire protocol
can be spoken without ROS installed.

Every struct is ``@final`` and keyless (what rosidl generates), named ``<pkg>::msg::dds_::<Type>_``
(the name rmw_cyclonedds puts on the wire) and serialized as plain CDR (XCDR1). ``ROS_NAME`` maps each
class to its ROS interface name (``pkg/msg/Type``) and ``FIELDS`` holds the ROS field list from which
the RIHS01 type hash is computed (see :mod:`robolearn.deploy.ros_hash`).
"""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.annotations import final
from cyclonedds.idl.types import float64, int32, sequence, uint8, uint32


def _dds_name(ros_name: str) -> str:
    pkg, kind, typ = ros_name.split("/")
    return f"{pkg}::{kind}::dds_::{typ}_"


# --- builtin_interfaces -------------------------------------------------------------------------
@dataclass
@final
class Time(IdlStruct, typename=_dds_name("builtin_interfaces/msg/Time")):
    sec: int32 = 0
    nanosec: uint32 = 0


@dataclass
@final
class Duration(IdlStruct, typename=_dds_name("builtin_interfaces/msg/Duration")):
    sec: int32 = 0
    nanosec: uint32 = 0


# --- std_msgs -----------------------------------------------------------------------------------
@dataclass
@final
class Header(IdlStruct, typename=_dds_name("std_msgs/msg/Header")):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
@final
class Bool(IdlStruct, typename=_dds_name("std_msgs/msg/Bool")):
    data: bool = False


@dataclass
@final
class MultiArrayDimension(IdlStruct, typename=_dds_name("std_msgs/msg/MultiArrayDimension")):
    label: str = ""
    size: uint32 = 0
    stride: uint32 = 0


@dataclass
@final
class MultiArrayLayout(IdlStruct, typename=_dds_name("std_msgs/msg/MultiArrayLayout")):
    dim: sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: uint32 = 0


@dataclass
@final
class Float64MultiArray(IdlStruct, typename=_dds_name("std_msgs/msg/Float64MultiArray")):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: sequence[float64] = field(default_factory=list)


# --- sensor_msgs --------------------------------------------------------------------------------
@dataclass
@final
class JointState(IdlStruct, typename=_dds_name("sensor_msgs/msg/JointState")):
    header: Header = field(default_factory=Header)
    name: sequence[str] = field(default_factory=list)
    position: sequence[float64] = field(default_factory=list)
    velocity: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)


@dataclass
@final
class Image(IdlStruct, typename=_dds_name("sensor_msgs/msg/Image")):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: sequence[uint8] = field(default_factory=bytes)


@dataclass
@final
class CompressedImage(IdlStruct, typename=_dds_name("sensor_msgs/msg/CompressedImage")):
    header: Header = field(default_factory=Header)
    format: str = ""
    data: sequence[uint8] = field(default_factory=bytes)


# --- trajectory_msgs ----------------------------------------------------------------------------
@dataclass
@final
class JointTrajectoryPoint(IdlStruct, typename=_dds_name("trajectory_msgs/msg/JointTrajectoryPoint")):
    positions: sequence[float64] = field(default_factory=list)
    velocities: sequence[float64] = field(default_factory=list)
    accelerations: sequence[float64] = field(default_factory=list)
    effort: sequence[float64] = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
@final
class JointTrajectory(IdlStruct, typename=_dds_name("trajectory_msgs/msg/JointTrajectory")):
    header: Header = field(default_factory=Header)
    joint_names: sequence[str] = field(default_factory=list)
    points: sequence[JointTrajectoryPoint] = field(default_factory=list)


# --- geometry_msgs ------------------------------------------------------------------------------
@dataclass
@final
class Point(IdlStruct, typename=_dds_name("geometry_msgs/msg/Point")):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
@final
class Quaternion(IdlStruct, typename=_dds_name("geometry_msgs/msg/Quaternion")):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0
    w: float64 = 1.0


@dataclass
@final
class Pose(IdlStruct, typename=_dds_name("geometry_msgs/msg/Pose")):
    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@dataclass
@final
class PoseStamped(IdlStruct, typename=_dds_name("geometry_msgs/msg/PoseStamped")):
    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)


# ROS interface name of every message class, and the reverse.
ROS_NAME: dict[type, str] = {
    Time: "builtin_interfaces/msg/Time",
    Duration: "builtin_interfaces/msg/Duration",
    Header: "std_msgs/msg/Header",
    Bool: "std_msgs/msg/Bool",
    MultiArrayDimension: "std_msgs/msg/MultiArrayDimension",
    MultiArrayLayout: "std_msgs/msg/MultiArrayLayout",
    Float64MultiArray: "std_msgs/msg/Float64MultiArray",
    JointState: "sensor_msgs/msg/JointState",
    Image: "sensor_msgs/msg/Image",
    CompressedImage: "sensor_msgs/msg/CompressedImage",
    JointTrajectoryPoint: "trajectory_msgs/msg/JointTrajectoryPoint",
    JointTrajectory: "trajectory_msgs/msg/JointTrajectory",
    Point: "geometry_msgs/msg/Point",
    Quaternion: "geometry_msgs/msg/Quaternion",
    Pose: "geometry_msgs/msg/Pose",
    PoseStamped: "geometry_msgs/msg/PoseStamped",
}
BY_ROS_NAME: dict[str, type] = {v: k for k, v in ROS_NAME.items()}

# ROS field types as (kind, element) with kind in {"base", "msg"} and a flag for unbounded sequences;
# this is the .msg definition the RIHS01 hash is computed from (rosidl's TypeDescription).
FIELDS: dict[str, list[tuple[str, str, bool]]] = {
    # (field name, type: a primitive name or a ROS message name, is_unbounded_sequence)
    "builtin_interfaces/msg/Time": [("sec", "int32", False), ("nanosec", "uint32", False)],
    "builtin_interfaces/msg/Duration": [("sec", "int32", False), ("nanosec", "uint32", False)],
    "std_msgs/msg/Header": [("stamp", "builtin_interfaces/msg/Time", False), ("frame_id", "string", False)],
    "std_msgs/msg/Bool": [("data", "bool", False)],
    "std_msgs/msg/MultiArrayDimension": [("label", "string", False), ("size", "uint32", False),
                                         ("stride", "uint32", False)],
    "std_msgs/msg/MultiArrayLayout": [("dim", "std_msgs/msg/MultiArrayDimension", True),
                                      ("data_offset", "uint32", False)],
    "std_msgs/msg/Float64MultiArray": [("layout", "std_msgs/msg/MultiArrayLayout", False),
                                       ("data", "float64", True)],
    "sensor_msgs/msg/JointState": [("header", "std_msgs/msg/Header", False), ("name", "string", True),
                                   ("position", "float64", True), ("velocity", "float64", True),
                                   ("effort", "float64", True)],
    "sensor_msgs/msg/Image": [("header", "std_msgs/msg/Header", False), ("height", "uint32", False),
                              ("width", "uint32", False), ("encoding", "string", False),
                              ("is_bigendian", "uint8", False), ("step", "uint32", False),
                              ("data", "uint8", True)],
    "sensor_msgs/msg/CompressedImage": [("header", "std_msgs/msg/Header", False), ("format", "string", False),
                                        ("data", "uint8", True)],
    "trajectory_msgs/msg/JointTrajectoryPoint": [("positions", "float64", True), ("velocities", "float64", True),
                                                 ("accelerations", "float64", True), ("effort", "float64", True),
                                                 ("time_from_start", "builtin_interfaces/msg/Duration", False)],
    "trajectory_msgs/msg/JointTrajectory": [("header", "std_msgs/msg/Header", False),
                                            ("joint_names", "string", True),
                                            ("points", "trajectory_msgs/msg/JointTrajectoryPoint", True)],
    "geometry_msgs/msg/Point": [("x", "float64", False), ("y", "float64", False), ("z", "float64", False)],
    "geometry_msgs/msg/Quaternion": [("x", "float64", False), ("y", "float64", False), ("z", "float64", False),
                                     ("w", "float64", False)],
    "geometry_msgs/msg/Pose": [("position", "geometry_msgs/msg/Point", False),
                               ("orientation", "geometry_msgs/msg/Quaternion", False)],
    "geometry_msgs/msg/PoseStamped": [("header", "std_msgs/msg/Header", False),
                                      ("pose", "geometry_msgs/msg/Pose", False)],
}


def stamp_from_seconds(t: float) -> "Time":
    sec = int(t // 1)
    return Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def seconds_from_stamp(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9
