"""Controller loop core, safety filter, watchdog, ROS 2 transports."""
