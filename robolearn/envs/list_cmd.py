"""``robolearn envs``: list what ``robolearn.make`` accepts."""
from __future__ import annotations


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    from robolearn.envs.registry import registered

    for name in registered():
        print(name)
    print("dmc/<domain>-<task> accepts any dm_control suite task")
    return 0
