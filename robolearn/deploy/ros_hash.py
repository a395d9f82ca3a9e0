"""RIHS01 type hashes (REP 2011): the sha256 of a message's type description as canonical JSON.

ROS 2 (Iron and later) puts ``typehash=RIHS01_<hex>;`` into each endpoint's USER_DATA so that
peers can tell whether their definitions of a type agree. The description lists the message's
fields (name + FieldType id / capacities / nested type name) and, sorted by name, every message
type it references transitively; default values and comments are not part of it.
"""
from __future__ import annotations

import hashlib
import json

from robolearn.deploy.ros_msgs import FIELDS

# rosidl type_description_interfaces/msg/FieldType ids for the primitives we use.
_TYPE_ID = {
    "int8": 2, "uint8": 3, "int16": 4, "uint16": 5, "int32": 6, "uint32": 7, "int64": 8, "uint64": 9,
    "float32": 10, "float64": 11, "char": 13, "bool": 15, "byte": 16, "string": 17,
}
_NESTED = 1
_UNBOUNDED_SEQUENCE_OFFSET = 144


def _is_message(type_name: str) -> bool:
    return "/" in type_name


def _field(name: str, type_name: str, unbounded: bool) -> dict:
    base = _NESTED if _is_message(type_name) else _TYPE_ID[type_name]
    return {
        "name": name,
        "type": {
            "type_id": base + (_UNBOUNDED_SEQUENCE_OFFSET if unbounded else 0),
            "capacity": 0,
            "string_capacity": 0,
            "nested_type_name": type_name if _is_message(type_name) else "",
        },
    }


def type_description(ros_name: str, fields: dict[str, list] = FIELDS) -> dict:
    """The TypeDescription (main type + sorted referenced types) as plain dicts."""
    if ros_name not in fields:
        raise KeyError(f"no field definition for ROS type {ros_name!r}")

    def describe(name: str) -> dict:
        return {"type_name": name, "fields": [_field(*f) for f in fields[name]]}

    seen: set[str] = set()
    stack = [t for _, t, _ in fields[ros_name] if _is_message(t)]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        if name not in fields:
            raise KeyError(f"ROS type {ros_name!r} references {name!r}, which has no field definition")
        seen.add(name)
        stack.extend(t for _, t, _ in fields[name] if _is_message(t))
    return {
        "type_description": describe(ros_name),
        "referenced_type_descriptions": [describe(n) for n in sorted(seen)],
    }


def rihs01(ros_name: str, fields: dict[str, list] = FIELDS) -> str:
    """``RIHS01_<sha256 hex>`` of the canonical JSON (json.dumps default separators, as rosidl does)."""
    text = json.dumps(type_description(ros_name, fields))
    return "RIHS01_" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def user_data(ros_name: str) -> bytes:
    """The USER_DATA that rmw puts on ROS 2 endpoints of this type."""
    return f"typehash={rihs01(ros_name)};".encode("ascii")
