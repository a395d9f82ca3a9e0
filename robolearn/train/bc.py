"""Behaviour cloning of chunk policies: recipe loading, the windowed demo dataset, and the training loop.

The loop is shared with distillation (``robolearn.train.distill``): it takes a loss closure, keeps an
EMA copy for evaluation, logs to tqdm and to the scalar log every trainer writes (``scalars.csv`` +
TensorBoard ``tb/``, robolearn.train.logging; tags ``train/loss``, ``train/lr``, ``train/samples_per_s``,
``train/ema_decay``), and checkpoints atomically so a killed run continues with ``resume=True`` from the
same step with the same RNG streams.

Training runs on one torch device (``device=``, the commands' ``--device``): the model, its optimizer
state, the whole windowed demo set and the sampling generator live there, so a step moves no data
between host and device. Checkpoints are written from CPU copies and load on any device.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
import yaml

from robolearn.data.windows import episode_windows
from robolearn.config_io import ConfigError, check_keys, from_dict
from robolearn.device import make_generator, resolve_device
from robolearn.policies import registry
from robolearn.policies.configuration import PolicyConfig


# ---------------------------------------------------------------- recipe
@dataclass
class BCTrainConfig:
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-4
    betas: tuple[float, float] = (0.95, 0.999)
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    grad_clip: float = 0.0  # 0: off
    ema: bool = True
    ema_power: float = 0.75
    ema_max_decay: float = 0.9999
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    success_only: bool = True  # train on successful episodes only

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclass
class Recipe:
    type: str
    policy: PolicyConfig
    train: BCTrainConfig = field(default_factory=BCTrainConfig)


RECIPE_KEYS = ("type", "policy", "train")


def recipe_from_dict(data: dict[str, Any], where: str = "recipe") -> Recipe:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping")
    check_keys(data, RECIPE_KEYS, where, what="section")
    if "type" not in data:
        raise ConfigError(f"{where}: missing 'type' (one of {', '.join(registry.names())})")
    name = data["type"]
    cfg = from_dict(registry.config_class(name), data.get("policy") or {}, where=f"{where}.policy")
    tcfg = from_dict(BCTrainConfig, data.get("train") or {}, where=f"{where}.train")
    return Recipe(name, cfg, tcfg)


def load_recipe(path: str | Path) -> Recipe:
    """A recipe file, or a shipped recipe by bare name (``diffusion``) or repository path (``policies/x.yaml``)."""
    from robolearn.shipped import resolve_recipe

    path = Path(resolve_recipe(path))
    return recipe_from_dict(yaml.safe_load(path.read_text()) or {}, where=str(path))


# ---------------------------------------------------------------- data
def load_episodes(path: str | Path, success_only: bool = True) -> list:
    from robolearn.data.episode_store import EpisodeStore

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"demo data not found: {path}")
    episodes = list(EpisodeStore(path, create=False))
    if success_only:
        episodes = [e for e in episodes if e.succeeded]
    if not episodes:
        raise ValueError(f"no {'successful ' if success_only else ''}episodes in {path}")
    return episodes


class ChunkDataset:
    """Every step c of every episode as a training window: obs history c-n_obs+1..c and the action
    chunk starting at c-n_obs+1 (so the executed part starts at index n_obs-1), padded by repeating
    the first / last frame at episode edges as Diffusion Policy does."""

    def __init__(self, episodes: Sequence, n_obs_steps: int, horizon: int, cameras: Sequence[str] = ()):
        if not episodes:
            raise ValueError("ChunkDataset: no episodes")
        states, actions, images = [], [], {cam: [] for cam in cameras}
        obs_idx, act_idx = [], []
        offset = 0
        for ep in episodes:
            act = np.asarray(ep.action, dtype=np.float32)
            t_len = act.shape[0]
            if t_len == 0:
                continue
            st = np.asarray(ep.state, dtype=np.float32)
            if st.shape[0] < t_len:
                raise ValueError(f"episode {getattr(ep, 'name', '?')}: {st.shape[0]} states for {t_len} actions")
            states.append(st[:t_len])
            actions.append(act)
            for cam in cameras:
                if cam not in ep.images:
                    raise KeyError(f"episode {getattr(ep, 'name', '?')} has no camera {cam!r} (has {sorted(ep.images)})")
                images[cam].append(np.asarray(ep.images[cam][:t_len]))
            o, a = episode_windows(t_len, n_obs_steps, horizon)  # the windows replay buffers sample too
            obs_idx.append(offset + o)
            act_idx.append(offset + a)
            offset += t_len
        if offset == 0:
            raise ValueError("ChunkDataset: all episodes are empty")
        self.state = torch.from_numpy(np.concatenate(states))
        self.action = torch.from_numpy(np.concatenate(actions))
        if not (torch.isfinite(self.state).all() and torch.isfinite(self.action).all()):
            raise ValueError("demo data contains NaN or inf in state or action")
        self.images = {cam: torch.from_numpy(np.concatenate(v)) for cam, v in images.items()}
        self.obs_idx = torch.from_numpy(np.concatenate(obs_idx))
        self.act_idx = torch.from_numpy(np.concatenate(act_idx))
        self.cameras = list(cameras)

    def __len__(self) -> int:
        return len(self.obs_idx)

    @property
    def state_dim(self) -> int:
        return int(self.state.shape[1])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[1])

    @property
    def device(self) -> torch.device:
        return self.state.device

    def to(self, device: str | torch.device) -> "ChunkDataset":
        """Move every array to ``device`` (in place; returns self). Images stay uint8 there: the encoder
        converts per batch, so a device holds the demo set at its on-disk size."""
        device = torch.device(device)
        self.state, self.action = self.state.to(device), self.action.to(device)
        self.images = {cam: v.to(device) for cam, v in self.images.items()}
        self.obs_idx, self.act_idx = self.obs_idx.to(device), self.act_idx.to(device)
        return self

    def stats(self) -> dict[str, np.ndarray]:
        def lo_hi(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            return x.min(0).values.cpu().numpy(), x.max(0).values.cpu().numpy()

        (s_lo, s_hi), (a_lo, a_hi) = lo_hi(self.state), lo_hi(self.action)
        return {"state_min": s_lo, "state_max": s_hi, "action_min": a_lo, "action_max": a_hi}

    def batch(self, idx: torch.Tensor) -> dict[str, Any]:
        o, a = self.obs_idx[idx], self.act_idx[idx]
        out: dict[str, Any] = {"state": self.state[o], "action": self.action[a]}
        if self.cameras:
            out["images"] = {cam: self.images[cam][o] for cam in self.cameras}
        return out

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, Any]:
        """A random batch on the dataset's device; ``generator`` must live there too."""
        if generator.device.type != self.device.type:
            raise ValueError(f"sampling generator is on {generator.device} but the dataset is on {self.device}")
        return self.batch(torch.randint(0, len(self), (batch_size,), generator=generator, device=self.device))


# ---------------------------------------------------------------- schedule
def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up then cosine decay to 0 (Diffusion Policy's schedule)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_policy(recipe: Recipe, dataset: ChunkDataset):
    """Fill data-dependent dims into the config, build the policy, set normalization statistics."""
    cfg = recipe.policy
    for name, have in (("state_dim", dataset.state_dim), ("action_dim", dataset.action_dim)):
        want = getattr(cfg, name)
        if want and want != have:
            raise ValueError(f"recipe {name}={want} but the data has {have}")
    cfg = replace(cfg, state_dim=dataset.state_dim, action_dim=dataset.action_dim)
    policy = registry.policy_class(recipe.type)(cfg)
    s = dataset.stats()
    policy.set_normalization(s["state_min"], s["state_max"], s["action_min"], s["action_max"])
    return policy


# ---------------------------------------------------------------- loop
LossFn = Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]


def _device_rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The default generator of an accelerator: losses draw their noise from it (randn_like on device tensors)."""
    if device.type == "cuda":
        return {"device": torch.cuda.get_rng_state(device)}
    if device.type == "mps":
        return {"device": torch.mps.get_rng_state()}
    return {}


def _set_device_rng_state(device: torch.device, rng: dict[str, torch.Tensor]) -> None:
    if "device" not in rng:
        return
    if device.type == "cuda":
        torch.cuda.set_rng_state(rng["device"], device)
    elif device.type == "mps":
        torch.mps.set_rng_state(rng["device"])


def run_training(policy: torch.nn.Module, loss_fn: LossFn, dataset: ChunkDataset, tcfg: BCTrainConfig,
                 out: str | Path, *, steps: int | None = None, resume: bool = False,
                 meta: dict[str, Any] | None = None, progress: bool = True,
                 device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train ``policy`` in place on ``device`` (it and ``dataset`` are moved there); returns {'step', 'loss',
    'first_loss' (this call's first step), 'policy' (the EMA or live model for evaluation)}."""
    from robolearn.policies.ema import EMA
    from robolearn.train import checkpoint as ckpt

    out = Path(out)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    total = int(steps or tcfg.steps)
    policy.to(dev)
    dataset.to(dev)
    # built after the move, so its moments are allocated on the device
    optimizer = torch.optim.AdamW(policy.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    gen = make_generator(dev, tcfg.seed)
    torch.manual_seed(tcfg.seed)  # seeds every device's default generator
    has_ckpt = any((out / n / ckpt.CONFIG_FILE).is_file() for n in ("checkpoint", ".checkpoint.old"))
    start = 0
    ema = EMA(policy, tcfg.ema_power, tcfg.ema_max_decay) if tcfg.ema else None
    if resume and has_ckpt:
        saved = ckpt.load_policy(out, expected_type=policy.type)
        if ema is not None:
            ema.model.load_state_dict(saved.state_dict())
        state, rng = ckpt.read_train_state(out, model=policy, optimizer=optimizer)
        start = int(state["step"])
        if ema is not None:
            ema.step = int(state.get("ema_step", start))
        trained_on = torch.device(state.get("device", "cpu"))  # runs before devices were recorded ran on CPU
        if trained_on.type == dev.type:
            torch.set_rng_state(rng["torch"])
            _set_device_rng_state(dev, rng)
            gen.set_state(rng["data"])
        else:
            # a generator's state is device-specific (CPU Mersenne Twister vs. CUDA Philox): it cannot move
            warnings.warn(f"{out} was trained on {trained_on} and resumes on {dev}: random streams restart from "
                          f"seed {tcfg.seed} + step {start}, so the run will not match an uninterrupted one exactly",
                          stacklevel=2)
            torch.manual_seed(tcfg.seed + start)
            gen.manual_seed(tcfg.seed + start)
    elif has_ckpt:
        raise ValueError(f"{out} already holds a checkpoint: pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)

    def save(step: int) -> None:
        eval_model = ema.model if ema is not None else policy
        with ckpt.atomic_directory(out / "checkpoint") as tmp:
            ckpt.write_policy_files(eval_model, tmp, {**(meta or {}), "step": step})
            ckpt.write_train_state(
                tmp, model=policy, optimizer=optimizer,
                state={"step": step, "ema_step": ema.step if ema else 0, "total_steps": total, "device": str(dev)},
                rng={"torch": torch.get_rng_state(), "data": gen.get_state(), **_device_rng_state(dev)},
            )

    if start >= total:
        return {"step": start, "loss": float("nan"), "first_loss": float("nan"), "policy": ema.model if ema else policy}

    from tqdm import tqdm

    from robolearn.train.logging import ScalarLogger, migrate_legacy_bc_log

    if start:
        migrate_legacy_bc_log(out)  # a run begun before the CSV continues its curve in it
    # rows after the checkpoint step were logged by the killed part and are logged again; a fresh start
    # (no checkpoint yet) drops every row of an earlier attempt
    logger = ScalarLogger(out, purge_after=start if start else -1)
    policy.train()
    bar = tqdm(range(start, total), initial=start, total=total, disable=not progress, desc="train", dynamic_ncols=True)
    t_last, n_last, loss_sum, loss_n, last_loss = time.perf_counter(), 0, 0.0, 0, float("nan")
    first_loss = float("nan")
    try:
        for step in bar:
            for g in optimizer.param_groups:
                g["lr"] = tcfg.lr * lr_factor(step, tcfg.warmup_steps, total)
            batch = dataset.sample(tcfg.batch_size, gen)
            loss = loss_fn(policy, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), tcfg.grad_clip)
            optimizer.step()
            decay = ema.update(policy) if ema is not None else 0.0
            last_loss = float(loss.detach())
            if step == start:
                first_loss = last_loss
            loss_sum += last_loss
            loss_n += 1
            n_last += tcfg.batch_size
            done = step + 1
            if done % tcfg.log_every == 0 or done == total:
                now = time.perf_counter()
                rate = n_last / max(now - t_last, 1e-9)
                mean_loss = loss_sum / loss_n
                bar.set_postfix(loss=f"{mean_loss:.4f}", samples_s=f"{rate:.0f}")
                logger.log(done, {"train/loss": mean_loss, "train/lr": optimizer.param_groups[0]["lr"],
                                  "train/samples_per_s": rate, "train/ema_decay": decay})
                t_last, n_last, loss_sum, loss_n = now, 0, 0.0, 0
            if done % tcfg.checkpoint_every == 0 or done == total:
                save(done)
    finally:
        bar.close()
        logger.close()
    return {"step": total, "loss": last_loss, "first_loss": first_loss,
            "policy": ema.model if ema is not None else policy}


def train_bc(recipe: Recipe, episodes: Iterable, out: str | Path, *, steps: int | None = None,
             resume: bool = False, data_path: str | None = None, progress: bool = True,
             device: str | torch.device = "cpu") -> dict[str, Any]:
    dev = device if isinstance(device, torch.device) else resolve_device(device)  # fail before any work
    episodes = list(episodes)
    dataset = ChunkDataset(episodes, recipe.policy.n_obs_steps, recipe.policy.horizon, recipe.policy.cameras)
    torch.manual_seed(recipe.train.seed)  # initial weights depend on the recipe's seed only (built on CPU)
    policy = build_policy(recipe, dataset)
    meta = {"data": data_path, "trainer": "bc", "train": _plain(recipe.train)}
    envs = sorted({str(ep.meta["env"]) for ep in episodes if isinstance(getattr(ep, "meta", None), dict)
                   and ep.meta.get("env")})
    if len(envs) == 1:  # the env the demos came from: eval / serve / collect check it
        meta["env"] = envs[0]
    return run_training(policy, lambda p, b: p.compute_loss(b), dataset, recipe.train, out,
                        steps=steps, resume=resume, meta=meta, progress=progress, device=dev)


def _plain(cfg) -> dict[str, Any]:
    from robolearn.config_io import to_dict

    return json.loads(json.dumps(to_dict(cfg), default=list))
