"""`robolearn record --env real/sim_arm` in a pseudo-terminal against `robolearn sim-robot` over DDS: the same
command and keys record a real robot (issue 13: "works the same with real/..."). sim-robot is the simulated
robot speaking the real protocol (joint states in, joint trajectories out, through the safety filter)."""
import os

import pytest
from procs import stop
from test_real_env_e2e import _sim_robot
from test_record import Terminal

pytest.importorskip("cyclonedds")


def test_record_drives_and_stores_an_episode_of_real_sim_arm(tmp_path, monkeypatch):
    from robolearn.data.episode_store import EpisodeStore
    from robolearn.deploy.dds import free_domain_id

    domain = free_domain_id(os.getpid() + 223)
    proc, env = _sim_robot(domain)
    monkeypatch.setenv("CYCLONEDDS_URI", env["CYCLONEDDS_URI"])
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))  # real/ envs take the domain from it, as ROS 2 tools do
    out = tmp_path / "real_human"
    t = Terminal(["--env", "real/sim_arm", "--teleop", "keyboard", "--episodes", "1", "--out", str(out),
                  "--operator", "ada", "--max-steps", "80"], tmp_path)
    try:
        t.expect(r"ep 1/1 \| step 0 \| successes 0/0 \| acting: - \| READY", timeout=90)
        t.send(b"\r")
        t.expect(r"\| REC")
        for _ in range(6):
            t.send(b"w", pause=0.15)  # +x, as in sim
        t.expect(r"step (1[0-9]|[2-9][0-9]) \| successes 0/0 \| acting: operator")
        t.send(b"b")
        t.expect(r"saved episode 1 \(episode_000000\.npz\): failure")
        assert t.wait() == 0, t.text()[-2000:]
    finally:
        t.close()
        stop(proc)
    ep = EpisodeStore(out).load(0, images=False)
    m = ep.meta
    assert (m["env"], m["device"], m["operator"], m["label"]) == ("real/sim_arm", "keyboard", "ada", "failure")
    assert m["fps"] == 20
    # the operator's +x presses moved the robot on the other side of DDS: its end effector went forward
    assert ep.state[-1, 0] > ep.state[0, 0] + 0.005, (ep.state[0, :3], ep.state[-1, :3])
