"""MuJoCo tasks built with dm_control.mjcf, scripted experts, randomization."""
