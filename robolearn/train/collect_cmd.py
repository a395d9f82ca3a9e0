"""``robolearn collect``: roll out an action source in an env and record every episode into an episode store.

Reproducible and resumable: episode i always runs with seed ``seed + i`` (env reset and source), and a
rerun into the same ``--out`` continues from the number of episodes already there. Each finished episode
is one atomically written file, so a kill loses at most the episode in progress.

Action sources come from a small registry (``register_source``) so that e.g. a ``policy`` source reading
``--checkpoint DIR`` can be added without touching the loop.
"""
from __future__ import annotations

import dataclasses
import importlib
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np


# ----------------------------------------------------------------------------------------------
# Action sources
# ----------------------------------------------------------------------------------------------
class Source(Protocol):
    def reset(self, seed: int) -> None: ...

    def act(self, obs: dict) -> np.ndarray: ...


@dataclasses.dataclass
class SourceOptions:
    """What a source factory gets besides the env."""

    noise: float = 0.0
    checkpoint: str | None = None
    env: str | None = None                  # the env being recorded (a policy trained elsewhere is refused)
    allow_env_mismatch: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.noise, (int, float)) or not np.isfinite(self.noise) or self.noise < 0:
            raise ValueError(f"noise must be a finite number >= 0, got {self.noise!r}")


SourceFactory = Callable[[Any, SourceOptions], Source]
_SOURCES: dict[str, str | SourceFactory] = {}


def register_source(name: str, factory: str | SourceFactory) -> None:
    """Register ``factory(env, options) -> Source`` (or a lazy ``"module:attr"`` string)."""
    _SOURCES[name] = factory


def sources() -> list[str]:
    return sorted(_SOURCES)


def make_source(name: str, env, options: SourceOptions) -> Source:
    if name not in _SOURCES:
        raise ValueError(f"unknown source {name!r}; known sources: {', '.join(sources())}")
    factory = _SOURCES[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory(env, options)


class RandomSource:
    """Uniform random actions in the env's action box (a baseline and a fast source for tests)."""

    def __init__(self, env, options: SourceOptions):
        if options.checkpoint is not None:
            raise ValueError("--checkpoint is only used by --source policy, not by --source random")
        self.space = env.action_space
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: dict) -> np.ndarray:
        low, high = self.space.low, self.space.high
        return self.rng.uniform(low, high).astype(np.float32)


class ExpertSource:
    """The task's scripted expert; rebuilt per episode so episode i depends only on its seed."""

    def __init__(self, env, options: SourceOptions):
        if options.checkpoint is not None:
            raise ValueError("--checkpoint is only used by --source policy, not by --source expert")
        from robolearn.sim.experts import make_expert  # lazy: sim loads MuJoCo, which random/policy sources skip

        self._make = make_expert
        self.env = env
        self.noise = options.noise
        self.expert = None

    def reset(self, seed: int) -> None:
        self.expert = self._make(self.env, noise=self.noise, seed=seed)
        self.expert.reset()

    def act(self, obs: dict) -> np.ndarray:
        return np.asarray(self.expert.act(obs), dtype=np.float32)


register_source("random", RandomSource)
register_source("expert", ExpertSource)
register_source("policy", "robolearn.train.evaluate:PolicySource")  # --source policy --checkpoint RUN


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class CollectConfig:
    env: str
    source: str
    episodes: int
    out: str
    noise: float = 0.0
    seed: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    max_steps: int | None = None
    checkpoint: str | None = None
    allow_env_mismatch: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.cameras, str):
            self.cameras = tuple(c.strip() for c in self.cameras.split(",") if c.strip())
        self.cameras = tuple(self.cameras)
        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"episodes must be an int >= 1, got {self.episodes!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise ValueError(f"image_size must be an int >= 1, got {self.image_size!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ValueError(f"max_steps must be None or an int >= 1, got {self.max_steps!r}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras listed twice: {list(self.cameras)}")
        SourceOptions(noise=self.noise)  # validates noise


def _check_resume(store, cfg: CollectConfig) -> None:
    """Refuse to append episodes that differ from the store's: env, source, cameras or image size.

    A store mixing image and state-only episodes (or two image sizes) only failed much later, in
    ``train bc`` or ``data export``; here both values are named while the fix is a flag away. Cameras
    and sizes come from the index (the recorded frames), so stores written before they were in the
    episode meta are checked too.
    """
    valid = [e for _, e in sorted(store.refresh()["files"].items()) if "corrupt" not in e]
    if not valid:
        return
    meta = store.load(store.names()[0], images=False).meta
    for key, want in (("env", cfg.env), ("source", cfg.source)):
        have = meta.get(key)
        if have is not None and have != want:
            raise ValueError(
                f"{store.root} already holds episodes with {key}={have!r}, not {want!r}; use another --out"
            )
    if len(valid) >= cfg.episodes:
        return  # nothing will be appended (a complete store is reported, whatever the image flags)
    shapes = valid[0]["shapes"]
    have_cams = sorted(k.split("/", 1)[1] for k in shapes if k.startswith("images/"))
    want_cams = sorted(cfg.cameras)
    if have_cams != want_cams:
        def show(cams):
            return ",".join(cams) if cams else "none"
        raise ValueError(
            f"{store.root} already holds episodes with cameras {show(have_cams)}, not {show(want_cams)}; "
            f"{'pass --cameras ' + show(have_cams) if have_cams else 'drop --cameras'} to resume it, "
            "or use another --out"
        )
    sizes = sorted({tuple(shapes[f"images/{c}"][:2]) for c in have_cams})
    want = (cfg.image_size, cfg.image_size)
    if sizes and sizes != [want]:
        have_size = " and ".join(f"{h}x{w}" for h, w in sizes)
        raise ValueError(
            f"{store.root} already holds images of {have_size} px, not {want[0]}x{want[1]} px "
            f"(--image-size {cfg.image_size}); pass the store's size to resume it, or use another --out"
        )


def collect(
    env_name: str,
    source: str,
    episodes: int,
    out: str,
    *,
    noise: float = 0.0,
    seed: int = 0,
    cameras=(),
    image_size: int = 84,
    max_steps: int | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    allow_env_mismatch: bool = False,
    report: bool = True,
) -> dict[str, Any]:
    """Record episodes until ``out`` holds ``episodes`` of them; returns the run summary (also said through
    ``log`` unless ``report`` is false: ``collect --json`` prints it as JSON instead)."""
    import robolearn
    from robolearn.data.episode_store import EpisodeStore

    cfg = CollectConfig(
        env=env_name, source=source, episodes=episodes, out=str(out), noise=noise, seed=seed,
        cameras=cameras, image_size=image_size, max_steps=max_steps, checkpoint=checkpoint,
        allow_env_mismatch=allow_env_mismatch,
    )
    say = log or (lambda _msg: None)
    overrides: dict[str, Any] = {}
    if cfg.cameras:
        overrides.update(cameras=list(cfg.cameras), image_size=cfg.image_size)
    env = None
    if not Path(cfg.out).exists():
        env = robolearn.make(cfg.env, **overrides)  # a bad env name must not leave an empty --out behind
    store = EpisodeStore(cfg.out)
    _check_resume(store, cfg)
    start = len(store)
    if start >= cfg.episodes:
        say(f"{cfg.out} already holds {start} episodes (>= {cfg.episodes} requested): nothing to collect")
    elif start:
        say(f"resuming: {cfg.out} already holds {start} episodes; collecting episodes {start}..{cfg.episodes - 1}")

    results: list[tuple[int, bool]] = []  # (steps, success) per episode of this run
    files: list[Path] = []  # the episode files this run wrote
    t0 = time.perf_counter()
    try:
        if start < cfg.episodes:
            env = env or robolearn.make(cfg.env, **overrides)
            results = _run_episodes(env, store, cfg, start, progress, files)
    finally:
        if env is not None:
            env.close()
    wall = time.perf_counter() - t0
    steps = [n for n, _ in results]
    summary_all = store.summary()
    summary = {
        "env": cfg.env,
        "source": cfg.source,
        "out": cfg.out,
        "resumed_from": start,
        "episodes": len(results),
        "success_rate": float(np.mean([s for _, s in results])) if results else 0.0,
        "mean_steps": float(np.mean(steps)) if steps else 0.0,
        "total_steps": int(sum(steps)),
        "wall_time_s": round(wall, 3),
        "steps_per_s": round(sum(steps) / wall, 1) if wall > 0 and steps else 0.0,
        "store_episodes": summary_all["episodes"],
        "store_success_rate": summary_all["success_rate"],
        "files": [str(f) for f in files],
    }
    if report:
        say(format_summary(summary))
    return summary


def _run_episodes(env, store, cfg: CollectConfig, start: int, progress: bool,
                  files: list[Path]) -> list[tuple[int, bool]]:
    from tqdm import tqdm

    src = make_source(cfg.source, env, SourceOptions(noise=cfg.noise, checkpoint=cfg.checkpoint, env=cfg.env,
                                                     allow_env_mismatch=cfg.allow_env_mismatch))
    meta = {"env": cfg.env, "source": cfg.source, "noise": cfg.noise}
    layout = getattr(getattr(env, "unwrapped", env), "state_layout", None)
    if layout:  # names of the state dimensions, for exports (LeRobot's feature names)
        meta["state_names"] = [name if n == 1 else f"{name}.{i}" for name, n in layout for i in range(n)]
    fps = (getattr(env, "metadata", None) or {}).get("render_fps")
    if fps:  # the control rate: what an export's fps and a replay's timing are
        meta["fps"] = int(fps)
    from robolearn.data.lerobot_export import ACTION_NAMES

    dim = int(env.action_space.shape[0])
    names = next((v for (prefix, size), v in ACTION_NAMES.items() if cfg.env.startswith(prefix) and size == dim), None)
    if names:
        meta["action_names"] = list(names)
    writer = store.writer(meta=meta)
    low = np.asarray(env.action_space.low, dtype=np.float32)
    high = np.asarray(env.action_space.high, dtype=np.float32)
    results: list[tuple[int, bool]] = []
    bar = tqdm(total=cfg.episodes, initial=start, unit="ep", desc=f"collect {cfg.env}", disable=not progress)
    try:
        for i in range(start, cfg.episodes):
            ep_seed = cfg.seed + i
            obs, _info = env.reset(seed=ep_seed)
            src.reset(ep_seed)
            writer.reset(obs, meta={"seed": ep_seed, "episode": i})
            t, success = 0, False
            while True:
                # Record what the env executes: the env clips into its box, so does the record.
                action = np.clip(np.asarray(src.act(obs), dtype=np.float32), low, high)
                obs, reward, terminated, truncated, info = env.step(action)
                t += 1
                if cfg.max_steps is not None and t >= cfg.max_steps and not terminated:
                    truncated = True
                success = success or bool(info.get("success", False))
                writer.step(action, obs, reward, terminated, truncated, info)
                if terminated or truncated:
                    break
            path = writer.close()
            if path is not None:
                files.append(path)
            results.append((t, success))
            bar.update(1)
            bar.set_postfix(success=f"{np.mean([s for _, s in results]):.0%}", steps=t)
    except BaseException:
        writer.discard()  # an interrupted episode is never written
        raise
    finally:
        bar.close()
    return results


def format_summary(s: dict[str, Any]) -> str:
    resumed = f" (resumed after {s['resumed_from']})" if s["resumed_from"] else ""
    lines = [
        f"collected {s['episodes']} episodes of {s['env']} ({s['source']}) into {s['out']}{resumed}",
        f"  success rate {s['success_rate']:.1%}, mean steps {s['mean_steps']:.1f}, total steps {s['total_steps']}, "
        f"wall time {s['wall_time_s']:.1f} s ({s['steps_per_s']} steps/s)",
    ]
    files = s.get("files") or []
    if files:
        span = Path(files[0]).name + (f" .. {Path(files[-1]).name}" if len(files) > 1 else "")
        lines.append(f"  wrote {len(files)} episode file{'s' if len(files) != 1 else ''}: "
                     f"{Path(files[0]).parent}/{span}")
    lines.append(f"  store {s['out']} now holds {s['store_episodes']} episodes, "
                 f"success rate {s['store_success_rate']:.1%}")
    return "\n".join(lines)


def format_header(args) -> str:
    """The one line a long run starts with: what it will record, from what, and where."""
    last = args.seed + args.episodes - 1
    source = args.source + (f" {args.checkpoint}" if args.checkpoint else "")
    noise = f", noise {args.noise:g}" if args.noise else ""
    cams = (f", cameras {args.cameras} at {args.image_size} px" if args.cameras.strip(", ")
            else ", state only (no cameras)")
    limit = f", at most {args.max_steps} steps each" if args.max_steps else ""
    return (f"collect: {args.episodes} episodes of {args.env} from the {source} source{noise}{cams}{limit}, "
            f"seeds {args.seed}..{last} -> {args.out}")


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("--env", required=True, help="env name, e.g. sim/peg_insert or dmc/cartpole-swingup")
    parser.add_argument("--source", default="expert", help=f"action source: {', '.join(sources())}")
    parser.add_argument("--episodes", type=int, required=True, help="total episodes the store should hold")
    parser.add_argument("--out", required=True, help="episode store directory (resumes if it has episodes)")
    parser.add_argument("--noise", type=float, default=0.0, help="expert suboptimality (0 = best)")
    parser.add_argument("--seed", type=int, default=0, help="episode i runs with seed + i")
    parser.add_argument("--cameras", default="", help="comma-separated camera names, e.g. front,wrist")
    parser.add_argument("--image-size", type=int, default=84)
    parser.add_argument("--max-steps", type=int, default=None, help="truncate episodes after this many steps")
    parser.add_argument("--checkpoint", default=None, help="policy checkpoint folder or run directory (BC or RL)")
    parser.add_argument("--allow-env-mismatch", action="store_true",
                        help="run a policy trained on another env (an intended transfer)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on stdout (the header and notes go to stderr)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    """Header line, the run, a human summary; under ``--json`` stdout holds only the JSON summary, which
    replaces the human one, and the header and notes go to stderr (the convention of every long command)."""
    import functools
    import json
    import sys

    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    CollectConfig(env=args.env, source=args.source, episodes=args.episodes, out=args.out, noise=args.noise,
                  seed=args.seed, cameras=args.cameras, image_size=args.image_size, max_steps=args.max_steps)
    if args.source not in _SOURCES:  # every bad flag fails before the header promises a run
        raise ValueError(f"unknown source {args.source!r}; known sources: {', '.join(sources())}")
    say(format_header(args))
    summary = collect(
        args.env, args.source, args.episodes, args.out, noise=args.noise, seed=args.seed,
        cameras=args.cameras, image_size=args.image_size, max_steps=args.max_steps,
        checkpoint=args.checkpoint, progress=not args.no_progress,
        log=say, allow_env_mismatch=args.allow_env_mismatch, report=not args.json,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
