"""`robolearn robot enable|disable|estop|release` steers a real `serve` over DDS on loopback (issue 12).

Why: without ROS 2 a user had no way to enable `serve`. Also here: a peer leaving (its writer deleted,
a DDS dispose/unregister) is not counted as a malformed message.
"""
import json
import os
import subprocess
import sys
import time

import pytest
from procs import STILL_POLICY, wait_for

pytest.importorskip("cyclonedds")



def _env():
    from robolearn.deploy.dds import loopback_config

    return dict(os.environ, CYCLONEDDS_URI=loopback_config(), MUJOCO_GL="egl", OMP_NUM_THREADS="1")




def test_robot_commands_steer_serve_from_another_folder(tmp_path):
    from robolearn.deploy.dds import free_domain_id

    domain = free_domain_id(os.getpid() + 57)
    (tmp_path / "tiny.py").write_text(STILL_POLICY)
    cli = [sys.executable, "-m", "robolearn.cli"]
    status = tmp_path / "serve.json"
    procs = [
        subprocess.Popen(cli + ["sim-robot", "--domain", str(domain), "--seconds", "90"], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        subprocess.Popen(cli + ["serve", "--policy", "tiny.py:Still", "--domain", str(domain), "--seconds", "90",
                                "--inference", "thread", "--status-file", str(status), "--status-every", "0.1",
                                "--print-every", "0"], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    ]

    def serve():
        return json.loads(status.read_text())

    def robot(action):
        r = subprocess.run(cli + ["robot", action, "--robot", "sim_arm", "--domain", str(domain)], cwd=tmp_path,
                           env=_env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    try:
        wait_for(lambda: serve()["received"].get("/joint_states", 0) > 5, 60, "serve to receive joint states")
        assert serve()["enabled"] is False
        out = robot("enable")
        assert "sent true on /robolearn/enable" in out
        wait_for(lambda: serve()["enabled"] is True, 5, "serve to be enabled")
        robot("estop")
        wait_for(lambda: serve()["estopped"] is True and serve()["enabled"] is False, 5, "the e-stop to latch")
        robot("enable")  # ignored while latched
        time.sleep(0.3)
        assert serve()["enabled"] is False and serve()["estopped"] is True
        robot("release")
        wait_for(lambda: serve()["estopped"] is False, 5, "the e-stop to clear")
        assert serve()["enabled"] is False  # release does not re-enable
        robot("enable")
        wait_for(lambda: serve()["enabled"] is True, 5, "serve to be enabled again")
        robot("disable")
        wait_for(lambda: serve()["enabled"] is False, 5, "serve to be disabled")
        time.sleep(0.5)
        # five `robot` processes came and went: their exits are not malformed messages
        assert not serve()["dropped"], serve()
    finally:
        outs = []
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                outs.append(p.communicate(timeout=15)[0])
            except subprocess.TimeoutExpired:
                p.kill()
                outs.append(p.communicate()[0])
        print("\n".join(o[-2000:] for o in outs))


def test_robot_command_without_serve_fails_naming_topic_and_domain(tmp_path):
    from robolearn.deploy.dds import free_domain_id

    domain = free_domain_id(os.getpid() + 77)
    r = subprocess.run([sys.executable, "-m", "robolearn.cli", "robot", "estop", "--domain", str(domain),
                        "--wait", "0.5"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert f"no serve node subscribed to /robolearn/estop on DDS domain {domain}" in r.stderr


def test_a_writer_leaving_is_not_a_malformed_message():
    """Loopback reader/writer pair; the writer is deleted (a dispose/unregister): nothing is dropped."""
    from robolearn.deploy import ros_msgs as M
    from robolearn.deploy.dds import DdsBus, free_domain_id, use_loopback

    use_loopback()
    domain = free_domain_id(os.getpid() + 91)
    sub, pub = DdsBus(domain), DdsBus(domain)
    got = []
    sub.reader("/robolearn/enable", M.Bool, lambda msg: got.append(msg.data))
    w = pub.writer("/robolearn/enable", M.Bool)
    try:
        wait_for(lambda: w.matched() > 0, 10, "the reader to match")
        time.sleep(0.1)
        for _ in range(3):
            w.write(M.Bool(data=True))
            time.sleep(0.02)
        wait_for(lambda: got, 5, "a sample")
        pub.close()  # the peer exits cleanly
        wait_for(lambda: sub.lifecycle.get("/robolearn/enable", 0) > 0, 5, "the dispose/unregister notice")
        time.sleep(0.2)
        assert sub.dropped.get("/robolearn/enable", 0) == 0, sub.last_error
        assert got and all(v is True for v in got)
    finally:
        sub.close()
        pub.close()
