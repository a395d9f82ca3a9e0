"""Robots, cameras and teleop devices; robot configs shared by sim and real."""
