"""The shared critic's step as C++ operators (``csrc/``): the LayerNorm-MLP ensemble, one member per thread.

Why: batched over (E, B, H) tensors, every element-wise pass of the critic (LayerNorm, ReLU, their
backward, Adam, Polyak) streams the whole ensemble's activations through memory, and two threads share
each small GEMM. The operators keep one member's activations in its core's L2 cache from forward
through backward to the optimizer step, and run its GEMMs single-threaded.

Only the critic is here (``rl/critic.py``'s ``native`` backend): actors, BC terms, temperatures and any
new loss are PyTorch, so a new algorithm never needs C++. The extension is compiled on first use
(~20 s, cached by PyTorch under ``TORCH_EXTENSIONS_DIR``) and links the BLAS that PyTorch's x86 Linux
wheels export; where that is not possible, ``load()`` returns the reason.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
import threading
from pathlib import Path

import torch

_CSRC = Path(__file__).parent / "csrc"
_SOURCES = [_CSRC / "ensemble_mlp.cpp"]
_FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
_lock = threading.Lock()
_state: dict[str, object] = {}


def load() -> str | None:
    """Build/load the operators once per process; None when ready, else why they are unavailable."""
    with _lock:
        if "error" in _state:
            return _state["error"]  # type: ignore[return-value]
        try:
            if os.environ.get("ROBOLEARN_NATIVE_OPS", "1") == "0":
                raise RuntimeError("disabled by ROBOLEARN_NATIVE_OPS=0")
            if not hasattr(torch.ops, "robolearn_rl") or not hasattr(torch.ops.robolearn_rl, "critic_step_q"):
                from torch.utils import cpp_extension

                # the headers' hash in the flags: PyTorch rebuilds when sources or flags change, not headers
                digest = hashlib.sha1(b"".join(h.read_bytes() for h in sorted(_CSRC.glob("*.h")))).hexdigest()[:12]
                path = os.environ.get("PATH", "")
                # the `ninja` wheel (a dependency) installs next to this interpreter, maybe not on PATH
                os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), path])
                t0 = time.monotonic()
                try:
                    cpp_extension.load(name=f"robolearn_rl_ops_{_cpu_tag()}", sources=[str(s) for s in _SOURCES],
                                       extra_cflags=[*_FLAGS, f"-DROBOLEARN_HEADERS={digest}"],
                                       is_python_module=False, verbose=False)
                finally:
                    os.environ["PATH"] = path
                if time.monotonic() - t0 > 2.0:
                    print(f"robolearn: built the learner's C++ operators in {time.monotonic() - t0:.0f} s "
                          "(cached for later runs)", file=sys.stderr)
            _state["error"] = None
        except Exception as exc:  # noqa: BLE001 - no compiler, no exported BLAS, unsupported platform
            _state["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        return _state["error"]  # type: ignore[return-value]


def _cpu_tag() -> str:
    """The build uses -march=native: one cached build per CPU instruction set, so a home directory shared
    by different machines never loads a library built for another CPU."""
    flags = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            flags += next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags += platform.processor()
    return hashlib.sha1(flags.encode()).hexdigest()[:8]


# The operators (shapes: x (B, in), params as Critic.parameters(), Q (E, B)) ---------------------------
def forward(x: torch.Tensor, params: list[torch.Tensor], members: torch.Tensor) -> torch.Tensor:
    """Q of the listed members only: (len(members), B)."""
    return torch.ops.robolearn_rl.forward(x, params, members)


def q_input_grad(x: torch.Tensor, params: list[torch.Tensor], in_start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Q of every member and d Q_e(b) / d x[b, in_start:]: (E, B), (E, B, in - in_start)."""
    return torch.ops.robolearn_rl.q_input_grad(x, params, in_start)


def critic_step(x, y, params, exp_avg, exp_avg_sq, target, step, lr, beta1, beta2, eps, tau):
    """Loss = mean (Q - y)^2, its gradient, torch.optim.Adam's step (``step`` already incremented) and
    Polyak into ``target``, all in place. Returns (loss, Q before the step)."""
    return torch.ops.robolearn_rl.critic_step(x, y, params, exp_avg, exp_avg_sq, target, step,
                                                    lr, beta1, beta2, eps, tau)


def critic_step_q(x, y, params, exp_avg, exp_avg_sq, target, step, lr, beta1, beta2, eps, tau, x_after, in_start):
    """``critic_step``, then every member's Q and d Q / d x_after[:, in_start:] at ``x_after`` right after that
    member's update (weights still in cache). Returns (loss, Q before, Q after at x_after, dQ/dx_after)."""
    return torch.ops.robolearn_rl.critic_step_q(x, y, params, exp_avg, exp_avg_sq, target, step, lr, beta1, beta2,
                                                eps, tau, x_after, in_start)
