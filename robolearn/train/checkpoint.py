"""Checkpoint folders: ``config.json`` + ``model.safetensors`` + ``normalization.safetensors`` (+ ``train/``).

Nothing here unpickles. A folder is written to a temporary sibling and swapped in with renames, so a
kill leaves either the previous checkpoint or the new one. A BC run directory holds its latest
checkpoint in ``<run>/checkpoint``; an RL run directory points at its latest step folder with
``latest.json`` and keeps the policy in ``checkpoints/<step>/policy``. Every loader accepts a run
directory of either kind or the folder itself. This is the one writer of policy folders.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from robolearn.config_io import from_dict, to_dict
from robolearn.policies import registry

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
NORM_FILE = "normalization.safetensors"
NORM_MODULES = ("state_norm", "action_norm")
NORM_PREFIXES = tuple(f"{m}." for m in NORM_MODULES)  # top-level normalisers (the chunk policies')


class CheckpointError(ValueError):
    """A checkpoint that exists but cannot be used (wrong type, shapes, corrupt file)."""


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory; on success it replaces ``path`` (old copy kept as ``.<name>.old`` until the swap ends)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    old = path.parent / f".{path.name}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    from robolearn.data.fsutil import fsync_path

    for f in tmp.rglob("*"):  # durable before the swap
        fsync_path(f)
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    fsync_path(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def _rl_latest_policy(run: Path) -> Path | None:
    """The policy folder of an RL run's latest step (``latest.json`` -> checkpoints/<step>/policy)."""
    pointer = run / "latest.json"
    if not pointer.is_file():
        return None
    try:
        name = json.loads(pointer.read_text())["checkpoint"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{pointer}: not a valid checkpoint pointer ({exc})") from exc
    return run / "checkpoints" / str(name) / "policy"


def resolve(path: str | Path) -> Path:
    """The checkpoint folder for ``path`` (a checkpoint folder, a BC run directory or an RL run directory)."""
    path = Path(path)
    cands = [path, path / "checkpoint", path / ".checkpoint.old", path / "policy"]
    rl = _rl_latest_policy(path)
    if rl is not None:
        cands.insert(1, rl)
    for cand in cands:
        if (cand / CONFIG_FILE).is_file() and _is_policy_config(cand / CONFIG_FILE):
            return cand
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    raise FileNotFoundError(f"no policy {CONFIG_FILE} in {path}, {path / 'checkpoint'} or an RL run's latest step: "
                            "not a policy checkpoint")


def _is_policy_config(file: Path) -> bool:
    try:
        doc = json.loads(file.read_text())
    except (json.JSONDecodeError, OSError):
        return True  # let read_config name the problem
    return isinstance(doc, dict) and "type" in doc


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _is_norm(key: str) -> bool:
    """Normalisation statistics, wherever the normaliser sits in the module tree."""
    return any(part in NORM_MODULES for part in key.split(".")[:-1])


def write_policy_files(policy, folder: Path, meta: dict[str, Any] | None = None) -> None:
    from robolearn.data.fsutil import atomic_write_json

    state = _tensors(policy)
    norm = {k: v for k, v in state.items() if _is_norm(k)}
    model = {k: v for k, v in state.items() if not _is_norm(k)}
    save_file(model, str(folder / MODEL_FILE))
    save_file(norm, str(folder / NORM_FILE))
    doc = {"format_version": FORMAT_VERSION, "type": policy.type, "config": to_dict(policy.config), "meta": meta or {}}
    atomic_write_json(folder / CONFIG_FILE, doc, indent=2, sort_keys=True)


def save_policy(policy, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Atomically write ``policy`` as a checkpoint folder at ``path``."""
    with atomic_directory(path) as tmp:
        write_policy_files(policy, tmp, meta)
    return Path(path)


def read_config(path: str | Path) -> tuple[str, Any, dict[str, Any]]:
    """(type name, typed config, meta) of a checkpoint; errors name the file and the problem."""
    folder = resolve(path)
    cfg_path = folder / CONFIG_FILE
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or "type" not in doc or "config" not in doc:
        raise CheckpointError(f"{cfg_path}: missing 'type' or 'config' entry")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: format_version {doc.get('format_version')!r}, expected {FORMAT_VERSION}")
    name = doc["type"]
    cfg_cls = registry.config_class(name)
    cfg = from_dict(cfg_cls, doc["config"], where=f"{cfg_path} ({name} config)")
    return name, cfg, doc.get("meta", {})


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file missing: {file}")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: unreadable safetensors file ({exc})") from exc


def load_state_strict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """load_state_dict with errors that name the missing/unexpected key or the mismatched shapes."""
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: tensors do not match the model (missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(f"{where}: tensor {k!r} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}")
    module.load_state_dict(tensors, strict=True)


def load_policy(path: str | Path, expected_type: str | None = None, device: str | torch.device = "cpu"):
    """Build the policy recorded in a checkpoint and load its weights and normalization statistics."""
    folder = resolve(path)
    name, cfg, meta = read_config(folder)
    if expected_type is not None and name != expected_type:
        raise CheckpointError(f"checkpoint {folder} holds a {name!r} policy, expected a {expected_type!r} policy")
    policy = registry.policy_class(name)(cfg)
    tensors = _load_tensors(folder / MODEL_FILE)
    tensors.update(_load_tensors(folder / NORM_FILE))
    load_state_strict(policy, tensors, str(folder))
    policy.meta = dict(meta)  # what it was trained on (env, env_kwargs, trainer): eval/serve/collect check it
    return policy.to(device).eval()


# ---------------------------------------------------------------- training state (resume)
def write_train_state(folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      state: dict[str, Any], rng: dict[str, torch.Tensor]) -> None:
    """Live (non-EMA) weights, optimizer moments, RNG states and counters under ``folder/train``."""
    train = folder / "train"
    train.mkdir(parents=True, exist_ok=True)
    save_file(_tensors(model), str(train / "model.safetensors"))
    opt = optimizer.state_dict()
    flat: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, pstate in opt["state"].items():
        for key, val in pstate.items():
            if torch.is_tensor(val):
                flat[f"{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = val
    save_file(flat, str(train / "optimizer.safetensors"))
    save_file({k: v.contiguous() for k, v in rng.items()}, str(train / "rng.safetensors"))
    doc = {"param_groups": opt["param_groups"], "optimizer_scalars": scalars, **state}
    from robolearn.data.fsutil import atomic_write_json

    atomic_write_json(train / "state.json", doc, indent=2, sort_keys=True, default=list)


def read_train_state(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer
                     ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore live weights and optimizer in place; return (state.json dict, rng tensors)."""
    folder = resolve(path)
    train = folder / "train"
    if not (train / "state.json").is_file():
        raise FileNotFoundError(f"no training state in {folder} (train/state.json missing): cannot resume")
    doc = json.loads((train / "state.json").read_text())
    load_state_strict(model, _load_tensors(train / "model.safetensors"), str(train / "model.safetensors"))
    flat = _load_tensors(train / "optimizer.safetensors")
    per: dict[int, dict[str, Any]] = {}
    for key, val in list(flat.items()) + list(doc.pop("optimizer_scalars").items()):
        pid, _, name = key.partition(".")
        per.setdefault(int(pid), {})[name] = val
    groups = doc.pop("param_groups")
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": per, "param_groups": groups})
    return doc, _load_tensors(train / "rng.safetensors")


def check_env(policy, env_name: str, allow_mismatch: bool = False) -> None:
    """A policy trained on one env used on another is almost always a mistake: say so, naming both."""
    trained = (getattr(policy, "meta", None) or {}).get("env")
    if trained and trained != env_name and not allow_mismatch:
        raise ValueError(f"this checkpoint was trained on {trained!r}, not {env_name!r}; pass --allow-env-mismatch "
                         "for an intended transfer")


def env_kwargs(policy) -> dict[str, Any]:
    """Env constructor overrides the policy was trained with (e.g. privileged state, action repeat)."""
    return dict((getattr(policy, "meta", None) or {}).get("env_kwargs") or {})
