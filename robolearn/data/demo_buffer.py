"""Demo buffer: a replay buffer filled from an episode store that can also receive interventions.

HIL-SERL puts human interventions into the demo half of the batch, so the buffer keeps spare
capacity beyond the loaded demos (``extra_capacity``) for transitions added online.
"""
from __future__ import annotations

from pathlib import Path

from robolearn.data.replay import ObsSpec, ReplayBuffer


class DemoBuffer(ReplayBuffer):
    @classmethod
    def from_store(cls, root: str | Path, spec: ObsSpec | None = None, action_dim: int | None = None,
                   extra_capacity: int = 10_000, seed: int = 0, only_successful: bool = False,
                   reward_bias: float = 0.0, extra_fields: dict[str, tuple[int, ...]] | None = None,
                   mc_discount: float = 0.99) -> "DemoBuffer":
        """Load every episode of the store at ``root`` (corrupt files are skipped by the store, with a warning)."""
        from robolearn.data.episode_store import EpisodeStore

        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"demo directory not found: {root}")
        store = EpisodeStore(root, create=False)  # reading demos never writes into the folder
        episodes = [ep for ep in store if ep.length > 0 and (ep.succeeded or not only_successful)]
        if not episodes:
            raise ValueError(f"no usable episodes in demo store {root}")
        first = episodes[0]
        store_spec = ObsSpec(int(first.state.shape[1]),
                             {cam: tuple(arr.shape[1:]) for cam, arr in first.images.items()})
        spec = spec or store_spec
        if spec.state_dim != store_spec.state_dim:
            raise ValueError(f"demos in {root} have state dim {store_spec.state_dim}, env has {spec.state_dim}")
        missing = set(spec.images) - set(store_spec.images)
        if missing:
            raise ValueError(f"demos in {root} lack camera(s) {sorted(missing)} the env provides")
        adim = int(first.action.shape[1])
        if action_dim is not None and adim != action_dim:
            raise ValueError(f"demos in {root} have action dim {adim}, env has {action_dim}")
        capacity = sum(ep.length + 1 for ep in episodes) + int(extra_capacity)
        buf = cls(capacity, spec, adim, seed=seed, extra_fields=extra_fields, mc_discount=mc_discount)
        for ep in episodes:
            buf.add_episode(ep, reward_bias)
        buf.num_demo_episodes = len(episodes)
        return buf

    num_demo_episodes: int = 0
