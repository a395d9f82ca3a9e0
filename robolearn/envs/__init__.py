"""The env contract, the registry and the wrappers shared by sim and real robots."""
from robolearn.envs.api import InvalidActionError, RobotEnv, validate_action
from robolearn.envs.registry import make, register, registered

__all__ = ["InvalidActionError", "RobotEnv", "validate_action", "make", "register", "registered"]
