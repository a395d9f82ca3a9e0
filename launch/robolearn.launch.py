"""ROS 2 launch: the robolearn policy node (rclpy) with parameters from launch/params.yaml.

    ros2 launch launch/robolearn.launch.py robot:=hardware/franka_fr3.yaml checkpoint:=runs/peg_cp

robolearn is a plain Python package (no ament package), so the node runs as a process
(`python -m robolearn.deploy.rclpy_node`) with the usual --ros-args. It starts DISABLED:
`ros2 topic pub --once /robolearn/enable std_msgs/msg/Bool "{data: true}"` to start,
`ros2 topic pub --once /robolearn/estop std_msgs/msg/Bool "{data: true}"` to stop.
"""
import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_launch_description():
    args = [
        DeclareLaunchArgument("params", default_value=os.path.join(HERE, "params.yaml"),
                              description="node parameters (YAML, ros__parameters)"),
        DeclareLaunchArgument("robot", default_value=os.path.join(HERE, "..", "hardware", "franka_fr3.yaml"),
                              description="robot config: joint names, limits, workspace, topics, rates"),
        DeclareLaunchArgument("checkpoint", default_value="", description="policy checkpoint folder"),
        DeclareLaunchArgument("python", default_value=sys.executable,
                              description="python with robolearn installed (e.g. the project's .venv)"),
        DeclareLaunchArgument("start_enabled", default_value="false"),
    ]
    node = ExecuteProcess(
        cmd=[LaunchConfiguration("python"), "-m", "robolearn.deploy.rclpy_node", "--ros-args",
             "-r", "__node:=robolearn",
             "--params-file", LaunchConfiguration("params"),
             "-p", ["robot_config:=", LaunchConfiguration("robot")],
             "-p", ["checkpoint:=", LaunchConfiguration("checkpoint")],
             "-p", ["start_enabled:=", LaunchConfiguration("start_enabled")]],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription(args + [node])
