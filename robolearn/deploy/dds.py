"""ROS 2 over Cyclone DDS without ROS: a participant, ROS-named topics, ROS 2 QoS conventions.

- topic ``/joint_states`` is ``rt/joint_states`` on the wire, the type ``sensor_msgs::msg::dds_::JointState_``;
- writers are reliable + volatile, readers best effort (they match reliable writers), keep-last;
- data representation is plain CDR (XCDR1), as rmw_cyclonedds uses;
- every endpoint carries ``typehash=RIHS01_...;`` in USER_DATA (REP 2011).
Incoming samples go to a callback on Cyclone's listener thread; a callback that raises (a malformed
message) is counted per topic and the sample dropped, and the node keeps running.
"""
from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Callable

from robolearn.deploy.ros_hash import user_data
from robolearn.deploy.ros_msgs import ROS_NAME


def loopback_config() -> str:
    """Cyclone config that keeps all traffic on loopback: interface lo, no multicast, unicast peer 127.0.0.1."""
    return (
        "<CycloneDDS><Domain Id=\"any\"><General><Interfaces><NetworkInterface name=\"lo\"/></Interfaces>"
        "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
        "<MaxAutoParticipantIndex>40</MaxAutoParticipantIndex><Peers><Peer address=\"127.0.0.1\"/></Peers>"
        "</Discovery></Domain></CycloneDDS>"
    )


def use_loopback(force: bool = False) -> None:
    """Set CYCLONEDDS_URI to the loopback config (before the first participant of the process)."""
    if force or not os.environ.get("CYCLONEDDS_URI"):
        os.environ["CYCLONEDDS_URI"] = loopback_config()


def domain_in_use(domain_id: int) -> bool:
    """True when some participant already holds the first discovery port of this domain on this host
    (RTPS: 7400 + 250 * domain + 10 for participant index 0)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("", 7410 + 250 * domain_id))
        return False
    except OSError:
        return True
    finally:
        sock.close()


def free_domain_id(seed: int, low: int = 1, high: int = 200) -> int:
    """A domain id no local participant uses yet, searched from ``seed`` (tests: one domain per test)."""
    span = high - low + 1
    for k in range(span):
        d = low + (seed + k) % span
        if not domain_in_use(d):
            return d
    raise RuntimeError(f"every DDS domain in [{low}, {high}] is in use on this host")


def dds_topic_name(ros_topic: str) -> str:
    """``/ns/name`` -> ``rt/ns/name`` (ROS 2 topic names must be absolute here)."""
    if not ros_topic or not ros_topic.startswith("/") or ros_topic.endswith("/") or "//" in ros_topic:
        raise ValueError(f"ROS topic must be an absolute name like '/joint_states', got {ros_topic!r}")
    return "rt" + ros_topic


class DdsBus:
    """One DDS participant with ROS 2-style writers and readers."""

    def __init__(self, domain_id: int = 0, loopback: bool = True, depth: int = 10):
        if not 0 <= domain_id <= 232:
            raise ValueError(f"DDS domain id must be in [0, 232], got {domain_id}")
        if loopback:
            use_loopback()
        from cyclonedds.domain import DomainParticipant

        self.domain_id = domain_id
        self.depth = depth
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, object] = {}
        self._readers: list = []
        self._writers: dict[str, object] = {}
        self.received: Counter = Counter()
        self.dropped: Counter = Counter()
        self.lifecycle: Counter = Counter()  # dispose/unregister notices (peers leaving), not data
        self.last_error: dict[str, str] = {}
        self._lock = threading.Lock()

    def _qos(self, cls: type, reliable: bool):
        from cyclonedds.core import Policy, Qos
        from cyclonedds.util import duration

        reliability = Policy.Reliability.Reliable(duration(milliseconds=100)) if reliable else Policy.Reliability.BestEffort
        return Qos(reliability, Policy.Durability.Volatile, Policy.History.KeepLast(self.depth),
                   Policy.DataRepresentation(use_cdrv0_representation=True),
                   Policy.Userdata(data=user_data(ROS_NAME[cls])))

    def _topic(self, ros_topic: str, cls: type):
        from cyclonedds.topic import Topic

        name = dds_topic_name(ros_topic)
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = Topic(self.participant, name, cls)
        elif topic.data_type is not cls:
            raise ValueError(f"topic {ros_topic} already used with type {ROS_NAME[topic.data_type]}")
        return topic

    def writer(self, ros_topic: str, cls: type) -> "Writer":
        from cyclonedds.pub import DataWriter

        key = dds_topic_name(ros_topic)
        if key not in self._writers:
            self._writers[key] = Writer(DataWriter(self.participant, self._topic(ros_topic, cls), qos=self._qos(cls, True)))
        return self._writers[key]

    def reader(self, ros_topic: str, cls: type, callback: Callable[[object], None]):
        """Subscribe; ``callback(msg)`` runs on Cyclone's listener thread; exceptions drop + count."""
        import weakref

        from cyclonedds.core import Listener
        from cyclonedds.sub import DataReader

        bus_ref = weakref.ref(self)  # no bus <-> reader cycle: the bus is freed (and closed) by refcount

        def on_data(reader) -> None:
            bus = bus_ref()
            if bus is None or bus.participant is None:
                return
            try:
                samples = reader.take(N=64)
            except Exception as exc:  # undecodable payload
                bus._drop(ros_topic, f"undecodable sample: {exc}")
                return
            for msg in samples:
                if _is_lifecycle(msg):
                    # A dispose / unregister (a peer's writer deleted, e.g. a clean exit): no data
                    # to deliver, and not a malformed message, so neither received nor dropped.
                    with bus._lock:
                        bus.lifecycle[ros_topic] += 1
                    continue
                with bus._lock:
                    bus.received[ros_topic] += 1
                try:
                    callback(msg)
                except Exception as exc:
                    bus._drop(ros_topic, str(exc))

        reader = DataReader(self.participant, self._topic(ros_topic, cls), qos=self._qos(cls, False),
                            listener=Listener(on_data_available=on_data))
        self._readers.append(reader)
        return reader

    def _drop(self, ros_topic: str, why: str) -> None:
        with self._lock:
            self.dropped[ros_topic] += 1
            self.last_error[ros_topic] = why

    def close(self) -> None:
        """Delete the DDS entities now, in order, readers' listeners detached first.

        Left to the garbage collector, a reader can outlive the ctypes thunk of its listener, and
        Cyclone's own threads (e.g. when a remote writer goes away) then call into freed memory.
        """
        if self.participant is None:
            return
        for reader in self._readers:
            try:
                reader.set_listener(None)
            except Exception:  # noqa: BLE001 - already deleted with its participant
                pass
        entities = [*self._readers, *(w.dw for w in self._writers.values()), *self._topics.values(),
                    self.participant]
        self._readers.clear()
        self._writers.clear()
        self._topics.clear()
        self.participant = None
        for entity in entities:  # children before the participant; Entity.__del__ is idempotent
            entity.__del__()

    def __del__(self) -> None:
        if getattr(self, "participant", None) is not None:
            self.close()


def _is_lifecycle(sample) -> bool:
    """True for a sample that carries no data: Cyclone's InvalidSample (sample_info.valid_data False).

    Why: when a peer's writer is deleted (the peer exits cleanly) the reader gets a dispose /
    unregister notice as an InvalidSample; passing it to a callback that reads ``msg.data`` counted a
    clean exit as a "malformed message".
    """
    from cyclonedds.internal import InvalidSample

    if isinstance(sample, InvalidSample):
        return True
    info = getattr(sample, "sample_info", None)
    return info is not None and getattr(info, "valid_data", True) is False


class Writer:
    def __init__(self, dw):
        self.dw = dw
        self.sent = 0

    def write(self, msg) -> None:
        self.dw.write(msg)
        self.sent += 1

    def matched(self) -> int:
        """How many readers are matched (ROS 2 subscriptions on this topic)."""
        return len(self.dw.get_matched_subscriptions())
