"""Preallocated circular replay buffer with n-step returns; each observation (and frame) stored once.

Layout: one slot per *observation*. An episode o_0, a_0, r_0, o_1, ..., o_T fills T+1 consecutive
slots; slot i holds o_i and, when a transition leaves it, a_i, r_i, terminated_i and ``has_next``.
The next observation of slot i is simply slot i+1 (same episode id), so images are never duplicated.
Overwriting (wrap-around) changes a slot's episode id, which invalidates every chain that would cross
it: a sample never mixes two episodes or old and new data.

Named extra fields (``extra_fields={"base_action": (A,), "intervened": ()}``) are stored per transition
like the action, so an algorithm can keep whatever it needs (a base policy's action, an intervention
flag); batches carry ``name`` at the sampled slot and ``next_name`` at the bootstrap slot (zeros where
nothing was recorded there, e.g. after the last transition). The field ``mc_return`` is special: the
buffer fills it with the discounted Monte-Carlo return-to-go when an episode ends (Cal-QL's floor).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class ObsSpec:
    state_dim: int
    images: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @classmethod
    def from_space(cls, space) -> "ObsSpec":
        """From a RobotEnv observation space (gymnasium Dict with "state" and optional "images")."""
        try:
            state_dim = int(space["state"].shape[0])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"observation space has no 'state' entry: {space}") from exc
        images = {}
        if "images" in getattr(space, "spaces", {}):
            images = {cam: tuple(int(s) for s in sp.shape) for cam, sp in space["images"].spaces.items()}
        return cls(state_dim, images)

    @classmethod
    def from_obs(cls, obs: dict) -> "ObsSpec":
        images = {cam: tuple(np.asarray(v).shape) for cam, v in obs.get("images", {}).items()}
        return cls(int(np.asarray(obs["state"]).shape[0]), images)


MC_RETURN = "mc_return"


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """Return-to-go G_t = sum_k discount^k r_{t+k} of one finished episode (no bootstrap after its end)."""
    out = np.zeros(len(rewards), np.float32)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[t]) + discount * acc
        out[t] = acc
    return out


class ReplayBuffer:
    def __init__(self, capacity: int, spec: ObsSpec, action_dim: int, seed: int = 0,
                 extra_fields: dict[str, tuple[int, ...]] | None = None, mc_discount: float = 0.99):
        if capacity < 2:
            raise ValueError(f"replay capacity must be >= 2, got {capacity}")
        for name in extra_fields or {}:
            if name in ("obs", "action", "reward", "discount", "next_obs", "is_demo") or name.startswith("next_"):
                raise ValueError(f"extra field name {name!r} is reserved")
        self.capacity, self.spec, self.action_dim = int(capacity), spec, int(action_dim)
        self.state = np.zeros((capacity, spec.state_dim), np.float32)
        self.images = {cam: np.zeros((capacity, *shape), np.uint8) for cam, shape in spec.images.items()}
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.has_next = np.zeros(capacity, bool)
        self.episode = np.full(capacity, -1, np.int64)
        self.ptr = 0            # next slot to write
        self.size = 0           # filled slots
        self.num_episodes = 0
        self.num_transitions = 0  # transitions currently stored
        self._cur = -1          # slot of the current episode's latest observation (-1: no episode open)
        self.rng = np.random.default_rng(seed)
        self.extra_fields = {k: tuple(int(d) for d in v) for k, v in (extra_fields or {}).items()}
        self.extras = {k: np.zeros((capacity, *shape), np.float32) for k, shape in self.extra_fields.items()}
        self.mc_discount = float(mc_discount)
        self._ep_slots: list[int] = []  # slots of the open episode's transitions (for mc_return)

    # Writing ------------------------------------------------------------------------------------
    def _check_obs(self, obs: dict) -> None:
        state = np.asarray(obs["state"])
        if state.shape != (self.spec.state_dim,):
            raise ValueError(f"obs['state'] has shape {state.shape}, buffer expects ({self.spec.state_dim},)")
        if not np.all(np.isfinite(state)):
            raise ValueError("obs['state'] has non-finite values")
        for cam, shape in self.spec.images.items():
            img = obs.get("images", {}).get(cam)
            if img is None:
                raise ValueError(f"obs['images'] is missing camera {cam!r}")
            if np.asarray(img).shape != shape:
                raise ValueError(f"obs['images'][{cam!r}] has shape {np.asarray(img).shape}, expected {shape}")

    def _write_obs(self, obs: dict) -> int:
        self._check_obs(obs)
        i = self.ptr
        if self.episode[i] >= 0 and self.has_next[i]:
            self.num_transitions -= 1
        self.state[i] = obs["state"]
        for cam in self.images:
            self.images[cam][i] = obs["images"][cam]
        self.has_next[i] = False
        self.terminated[i] = False
        self.reward[i] = 0.0
        for arr in self.extras.values():
            arr[i] = 0.0
        self.episode[i] = self.num_episodes
        # The slot before an overwritten one may still claim it as its next obs; the episode id check
        # in sampling rejects that, so nothing more to do here.
        self.ptr = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return i

    def start_episode(self, obs: dict) -> None:
        if self._cur >= 0:
            self.num_episodes += 1  # previous episode was left open (e.g. discarded): close it
        self._ep_slots = []
        self._cur = self._write_obs(obs)

    def add(self, action, reward: float, next_obs: dict, terminated: bool, truncated: bool,
            extras: dict[str, np.ndarray] | None = None) -> None:
        """Record the transition from the current observation; ends the episode when done.

        ``extras`` holds values of the declared extra fields for this transition (missing ones stay 0)."""
        if self._cur < 0:
            raise RuntimeError("add() before start_episode(obs)")
        action = np.asarray(action, np.float32)
        if action.shape != (self.action_dim,):
            raise ValueError(f"action has shape {action.shape}, buffer expects ({self.action_dim},)")
        if not np.all(np.isfinite(action)) or not np.isfinite(reward):
            raise ValueError("non-finite action or reward")
        checked = {}
        for name, value in (extras or {}).items():
            if name not in self.extras:
                raise KeyError(f"extra field {name!r} was not declared (buffer has {sorted(self.extras)})")
            v = np.asarray(value, np.float32)
            if v.shape != self.extra_fields[name] or not np.all(np.isfinite(v)):
                raise ValueError(f"extra field {name!r}: shape {v.shape} (expected {self.extra_fields[name]}) "
                                 "or non-finite values")
            checked[name] = v
        i = self._cur
        self.action[i] = action
        for name, v in checked.items():
            self.extras[name][i] = v
        self.reward[i] = reward
        self.terminated[i] = bool(terminated)
        nxt = self._write_obs(next_obs)
        self.has_next[i] = True
        self.num_transitions += 1
        self._cur = nxt
        self._ep_slots.append(i)
        if terminated or truncated:
            if MC_RETURN in self.extras:
                slots = np.asarray(self._ep_slots)
                self.extras[MC_RETURN][slots] = discounted_returns(self.reward[slots], self.mc_discount)
            self.num_episodes += 1
            self._cur = -1
            self._ep_slots = []

    def add_episode(self, ep, reward_bias: float = 0.0, extras: dict[str, np.ndarray] | None = None) -> None:
        """Append a whole recorded ``Episode`` (from the episode store), ``reward_bias`` added to each reward;
        ``extras`` maps field -> (T, ...) values per transition."""
        t = ep.length
        if t == 0:
            return
        def obs_at(k):
            o = {"state": ep.state[k]}
            if self.spec.images:
                o["images"] = {cam: ep.images[cam][k] for cam in self.spec.images}
            return o
        self.start_episode(obs_at(0))
        for k in range(t):
            last = k == t - 1
            self.add(ep.action[k], float(ep.reward[k]) + reward_bias, obs_at(k + 1), bool(ep.terminated[k]),
                     bool(ep.truncated[k]) or (last and not bool(ep.terminated[k])),
                     {name: v[k] for name, v in (extras or {}).items()})

    def __len__(self) -> int:
        return self.num_transitions

    # Sampling -----------------------------------------------------------------------------------
    def _valid(self, idx: np.ndarray) -> np.ndarray:
        nxt = (idx + 1) % self.capacity
        return self.has_next[idx] & (self.episode[nxt] == self.episode[idx]) & (self.episode[idx] >= 0)

    def sample_indices(self, n: int) -> np.ndarray:
        if self.num_transitions == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, n)
        bad = ~self._valid(idx)
        tries = 0
        while bad.any():
            idx[bad] = self.rng.integers(0, self.size, int(bad.sum()))
            bad = ~self._valid(idx)
            tries += 1
            if tries > 1000:
                raise RuntimeError("could not draw valid transitions (buffer nearly empty?)")
        return idx

    def gather(self, idx: np.ndarray, discount: float, n_step: int = 1,
               windows: tuple[int, int] | None = None) -> dict:
        """n-step transitions starting at slots ``idx``: reward = sum gamma^k r, discount = gamma^m (1 - done).

        ``windows`` = (n_obs_steps, horizon) adds ``obs_history`` / ``next_obs_history`` ((B, n_obs, ...),
        at s and at the bootstrap s') and ``action_chunk`` ((B, horizon, A) from s), padded like BC's."""
        cap = self.capacity
        idx = np.asarray(idx)
        ep0 = self.episode[idx]
        boot = (idx + 1) % cap                      # slot of the bootstrap observation
        ret = self.reward[idx].astype(np.float32)
        disc = np.full(len(idx), discount, np.float32)  # gamma^m after m transitions
        term = self.terminated[idx].copy()
        alive = ~term
        for _ in range(1, n_step):
            s = boot
            ok = alive & self.has_next[s] & (self.episode[s] == ep0) & (self.episode[(s + 1) % cap] == ep0)
            ret = np.where(ok, ret + disc * self.reward[s], ret).astype(np.float32)
            disc = np.where(ok, disc * discount, disc).astype(np.float32)
            term |= ok & self.terminated[s]
            boot = np.where(ok, (s + 1) % cap, boot)
            alive = ok & ~self.terminated[s]
        disc = np.where(term, 0.0, disc).astype(np.float32)
        out = {
            "obs": self._obs(idx),
            "action": torch.from_numpy(self.action[idx]),
            "reward": torch.from_numpy(ret),
            "discount": torch.from_numpy(disc),
            "next_obs": self._obs(boot),
        }
        for name, arr in self.extras.items():
            out[name] = torch.from_numpy(arr[idx])
            out[f"next_{name}"] = torch.from_numpy(arr[boot])
        if windows is not None:  # chunk policies' inputs: obs histories at s and s', the action chunk from s
            n_obs, horizon = windows
            o, a = self.chunk_windows(idx, n_obs, horizon)
            o_next, _ = self.chunk_windows(boot, n_obs, n_obs)
            out["obs_history"], out["next_obs_history"] = self._obs(o), self._obs(o_next)
            out["action_chunk"] = torch.from_numpy(self.action[a])
        return out

    def chunk_windows(self, idx: np.ndarray, n_obs_steps: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
        """Slots of the action-chunk windows at transitions ``idx`` with BC's padding (data/windows.py):
        (len, n_obs) observation slots and (len, horizon) action slots, clamped to each episode."""
        from robolearn.data.windows import window_offsets

        o_off, a_off = window_offsets(n_obs_steps, horizon)
        idx = np.asarray(idx)

        def walk(offsets: np.ndarray) -> np.ndarray:
            out = np.empty((len(idx), len(offsets)), np.int64)
            ep = self.episode[idx]
            for col, off in enumerate(offsets):
                pos, step = idx.copy(), int(np.sign(off))
                for _ in range(abs(int(off))):  # move one transition at a time; stop at the episode's edge
                    nxt = (pos + step) % self.capacity
                    # same episode id (overwritten or unwritten slots differ) and a transition, not the last obs
                    ok = (self.episode[nxt] == ep) & self.has_next[nxt]
                    pos = np.where(ok, nxt, pos)
                out[:, col] = pos
            return out

        return walk(o_off), walk(a_off)

    def sample_chunks(self, batch_size: int, n_obs_steps: int, horizon: int) -> dict:
        """BC-style windows: obs history (B, n_obs, ...) and action chunks (B, horizon, A)."""
        idx = self.sample_indices(batch_size)
        o, a = self.chunk_windows(idx, n_obs_steps, horizon)
        obs = {"state": torch.from_numpy(self.state[o])}
        if self.images:
            obs["images"] = {cam: torch.from_numpy(arr[o]) for cam, arr in self.images.items()}
        return {**obs, "action": torch.from_numpy(self.action[a])}

    def _obs(self, idx: np.ndarray) -> dict:
        out = {"state": torch.from_numpy(self.state[idx])}
        if self.images:
            out["images"] = {cam: torch.from_numpy(arr[idx]) for cam, arr in self.images.items()}
        return out

    def sample(self, batch_size: int, discount: float, n_step: int = 1,
               windows: tuple[int, int] | None = None) -> dict:
        return self.gather(self.sample_indices(batch_size), discount, n_step, windows)

    # Checkpointing ------------------------------------------------------------------------------
    _ARRAYS = ("state", "action", "reward", "terminated", "has_next", "episode")

    def save(self, path: str | Path) -> None:
        """Atomic .npz (no pickle): arrays, counters and the sampling RNG state."""
        path = Path(path)
        meta = {"capacity": self.capacity, "ptr": self.ptr, "size": self.size, "num_episodes": self.num_episodes,
                "num_transitions": self.num_transitions, "cur": self._cur, "action_dim": self.action_dim,
                "state_dim": self.spec.state_dim, "images": {k: list(v) for k, v in self.spec.images.items()},
                "rng": self.rng.bit_generator.state}
        n = self.size  # slots 0..size-1 are the filled ones (writing starts at 0 and wraps only when full)
        arrays = {k: getattr(self, k)[:n] for k in self._ARRAYS}
        arrays.update({f"images.{cam}": arr[:n] for cam, arr in self.images.items()})
        arrays.update({f"extras.{name}": arr[:n] for name, arr in self.extras.items()})
        meta["extra_fields"] = {k: list(v) for k, v in self.extra_fields.items()}
        meta["ep_slots"] = [int(x) for x in self._ep_slots]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        import io

        from robolearn.data.fsutil import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    def load(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"replay buffer file not found: {path}")
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(bytes(data["meta"]).decode())
        except (ValueError, OSError, KeyError) as exc:
            raise ValueError(f"corrupt replay buffer file {path}: {exc}") from exc
        # a buffer that never wrapped (slots 0..size-1 in write order) also loads into a larger one
        grows = meta["size"] < meta["capacity"] <= self.capacity and meta["ptr"] == meta["size"]
        if (meta["state_dim"], meta["action_dim"]) != (self.spec.state_dim, self.action_dim) or (
                meta["capacity"] != self.capacity and not grows):
            raise ValueError(f"replay buffer {path} has capacity/state/action "
                             f"{meta['capacity'], meta['state_dim'], meta['action_dim']}, expected "
                             f"{self.capacity, self.spec.state_dim, self.action_dim}")
        n = int(meta["size"])
        try:
            for k in self._ARRAYS:
                getattr(self, k)[n:] = 0 if k != "episode" else -1
                getattr(self, k)[:n] = data[k][:n]
            for cam in self.images:
                self.images[cam][:n] = data[f"images.{cam}"][:n]
            saved_fields = meta.get("extra_fields", {})
            for name, arr in self.extras.items():
                arr[n:] = 0.0
                if name in saved_fields:
                    arr[:n] = data[f"extras.{name}"][:n]
                else:
                    arr[:n] = 0.0  # a field added since the checkpoint: unknown, 0 like unrecorded values
        except (ValueError, KeyError) as exc:
            raise ValueError(f"corrupt replay buffer file {path}: {exc}") from exc
        self.ptr, self.size, self.num_episodes = meta["ptr"], meta["size"], meta["num_episodes"]
        self.num_transitions, self._cur = meta["num_transitions"], meta["cur"]
        self._ep_slots = list(meta.get("ep_slots", []))
        self.rng.bit_generator.state = meta["rng"]
