"""Helpers the process-level tests share: waiting on a condition, stopping subprocesses, a still policy."""
from __future__ import annotations

import subprocess
import time

# a file.py:Name policy for `serve --policy tiny.py:Still`: always a 4-step chunk of zeros
STILL_POLICY = """import numpy as np

class Still:
    def reset(self):
        pass

    def act(self, obs):
        return np.zeros((4, 7))
"""


def wait_for(pred, timeout: float, what: str, poll: float = 0.05) -> None:
    """Poll ``pred`` until true (a status file mid-write or absent counts as not yet); fail naming ``what``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if pred():
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def stop(*procs: subprocess.Popen) -> None:
    """Terminate, then kill what did not exit within 10 s."""
    for p in procs:
        p.terminate()
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
