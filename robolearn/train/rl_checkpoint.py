"""RL run checkpoints: everything to resume (algorithm state, buffers, counters, RNG) plus the acting part
as a policy folder, so ``eval``, ``serve`` and ``collect --source policy`` load an RL run like a BC one.

Layout of a run directory::

    latest.json                        {"checkpoint": "step_000002000", "env_step": 2000, "agent_step": 250}
    checkpoints/step_000002000/
        train_state.safetensors        algorithm state_tensors() + torch RNG
        online.npz, demo.npz           replay buffers
        state.json                     loop counters (env and agent steps, action repeat), numpy RNG, env, seed
        run_config.json                the RunConfig
        policy/                        config.json + model.safetensors + normalization.safetensors

Step folders are named by env steps (physics control steps = agent steps x action repeat), the unit of
``train.steps`` and of the scalar log; checkpoints written before that counted agent steps (state.json
without ``"step_unit": "env"``), the same numbers at action repeat 1.

A step folder is written under a temporary name, fsynced and renamed; ``latest.json`` flips after it.
The two newest step folders are kept, so a damaged latest checkpoint has one to fall back to.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from robolearn.data.fsutil import atomic_write_json, fsync_path
from robolearn.train.checkpoint import write_policy_files

LATEST = "latest.json"
POLICY_DIR = "policy"
KEEP = 2  # step folders kept: the latest and one to fall back to


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    p = Path(run_dir) / LATEST
    if not p.is_file():
        return None
    try:
        name = json.loads(p.read_text())["checkpoint"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{p} is not a valid checkpoint pointer ({exc})") from exc
    ck = Path(run_dir) / "checkpoints" / name
    if not (ck / "train_state.safetensors").is_file():
        raise ValueError(f"{p} points to {ck}, which is incomplete")
    return ck


def candidates(run_dir: str | Path) -> list[Path]:
    """Step folders to resume from, best first: the one ``latest.json`` names, then the others newest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    steps = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_")
                    and not p.name.endswith(".tmp")), key=lambda p: p.name, reverse=True)
    pointer = Path(run_dir) / LATEST
    try:
        named = root / json.loads(pointer.read_text())["checkpoint"]
    except (OSError, ValueError, KeyError, TypeError):
        named = None
    if named is not None and named in steps:
        steps.remove(named)
        steps.insert(0, named)
    return steps


def write_checkpoint(run_dir: Path, name: str, *, tensors: dict[str, torch.Tensor], policy, policy_meta: dict,
                     buffers: dict[str, Any], state: dict, run_config: dict) -> Path:
    """Write one step folder atomically and point ``latest.json`` at it; all but the newest ``KEEP`` go."""
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / name, root / (name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(tensors, str(tmp / "train_state.safetensors"))
    for fname, buf in buffers.items():
        buf.save(tmp / fname)
    atomic_write_json(tmp / "state.json", state)
    atomic_write_json(tmp / "run_config.json", run_config, indent=2)
    (tmp / POLICY_DIR).mkdir()
    write_policy_files(policy, tmp / POLICY_DIR, policy_meta)
    for f in list(tmp.iterdir()) + list((tmp / POLICY_DIR).iterdir()):  # durable before the pointer flips
        fsync_path(f)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_path(root)
    atomic_write_json(Path(run_dir) / LATEST, {"checkpoint": name, "env_step": state.get("env_step"),
                                               "agent_step": state.get("agent_step", state.get("env_step"))})
    keep = {p.name for p in sorted((p for p in root.iterdir() if p.name.startswith("step_")
                                    and not p.name.endswith(".tmp")), key=lambda p: p.name)[-KEEP:]} | {name}
    for old in root.iterdir():
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(ck: Path) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """(state.json, run_config.json, train tensors) of a step folder."""
    from safetensors.torch import load_file

    state = json.loads((ck / "state.json").read_text())
    cfg_file = ck / "run_config.json"
    if not cfg_file.is_file():
        raise ValueError(f"{ck} has no run_config.json: written by an older robolearn, cannot resume it")
    return state, json.loads(cfg_file.read_text()), load_file(str(ck / "train_state.safetensors"))
