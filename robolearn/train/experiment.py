"""``robolearn experiment compare``: BC alone vs RLPD vs residual RL vs EXPO vs ConRFT, one base per seed.

The comparison is only fair if every method sees the same demos, starts from the same base policy of its
seed, runs the same number of env steps and is evaluated on the same episodes (the trainer's evaluation
seeds, which the BC evaluation reuses). One command does all of it so the README table can be reproduced,
and since a full task takes hours it resumes after a kill: every sub-run leaves its state on disk and is
skipped once complete, continued when partial.

Layout of ``OUT``::

    experiment.json                 the settings the directory was made with (a rerun must match)
    demos/                          expert demos (an episode store)
    seed{s}/base/                   the BC base of seed s (a BC run directory)
    seed{s}/bc_eval.json            its evaluation: the "bc" method's result
    seed{s}/{method}/               an RL run directory (scalars.csv, checkpoints/, latest.json)
    seed{s}/wall.json               wall-clock per sub-run, summed over invocations
    compare.md, compare.json, compare.png

The aggregation (``first_step_reaching``, ``summarize``, ``render_markdown``, ``mean_band``) is pure so it is
tested on hand-built curves; ``run_compare`` is the part that trains.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

METHODS = ("bc", "rlpd", "residual", "expo", "conrft")
RL_METHODS = METHODS[1:]
# The recipe each RL method runs with (rlpd: the BC-regularised RLPD recipe, the strongest RLPD baseline here).
RECIPES = {"rlpd": "policies/rlpd_bc.yaml", "residual": "policies/residual.yaml",
           "expo": "policies/expo.yaml", "conrft": "policies/conrft.yaml"}
BASE_RECIPE = "policies/consistency.yaml"  # one-step sampling: EXPO's N candidates and ConRFT's actor need it
# The budgets: peg insertion within 20k env steps, pick_cube within 10k.
ENV_STEPS = {"sim/peg_insert": 20_000, "sim/pick_cube": 10_000}
DEFAULT_STEPS = 10_000
EVALS_PER_RUN = 10       # default --eval-every = steps / 10
EVAL_EPISODES = 20
EVAL_SEED = 10**9        # the trainer evaluates episode k with seed 10**9 + k: the BC evaluation uses the same
DEMO_SEED = 0            # demo episode i runs with seed DEMO_SEED + i, the same for every seed of the comparison
THRESHOLD = 0.9          # "env steps to first reach 90% eval success"
LAST_K = 3               # "mean of the last three evaluations"
# Flags own these keys so every method runs the same budget and evaluation; --set may not change them.
FLAG_KEYS = {"steps": "--steps", "eval_every": "--eval-every", "eval_episodes": "--eval-episodes",
             "torch_threads": "--threads", "env_overrides": "(the demos' env)"}
SET_GROUP_RL = "rl"      # --set rl.train.batch_size=32 applies to every RL method of the run


# ---------------------------------------------------------------------------------------------- settings
def did_you_mean(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_methods(text: str | Sequence[str]) -> tuple[str, ...]:
    """Comma-separated method names, in the order given, each once; unknown names are an error."""
    items = [m.strip() for m in text.split(",")] if isinstance(text, str) else [str(m).strip() for m in text]
    items = [m for m in items if m]
    if not items:
        raise ValueError(f"--methods is empty; choose from {', '.join(METHODS)}")
    out: list[str] = []
    for m in items:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}{did_you_mean(m, METHODS)}; known: {', '.join(METHODS)}")
        if m not in out:
            out.append(m)
    return tuple(out)


def parse_sets(items: Sequence[str], methods: Sequence[str]) -> dict[str, dict]:
    """``method.section.key=value`` (YAML value syntax) -> {method: nested overrides}. ``rl.`` addresses every
    RL method; ``bc.`` edits the base recipe (sections policy / train)."""
    import yaml

    groups = tuple(methods) + ((SET_GROUP_RL,) if any(m in RL_METHODS for m in methods) else ())
    out: dict[str, dict] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 3 or not all(parts):
            raise ValueError(f"--set expects METHOD.SECTION.KEY=VALUE (e.g. residual.agent.alpha=0.2), got {item!r}")
        method = parts[0]
        if method not in groups:
            known = ", ".join(groups)
            raise ValueError(f"--set {key}: {method!r} is not a method of this run{did_you_mean(method, groups)}; "
                             f"use one of {known}")
        if method != "bc" and parts[1] == "train" and parts[2] in FLAG_KEYS:
            raise ValueError(f"--set {key}: train.{parts[2]} is set for every method by {FLAG_KEYS[parts[2]]}")
        if method == "bc" and parts[1] == "train" and parts[2] == "seed":
            raise ValueError(f"--set {key}: the base recipe's seed is the comparison's seed")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {key}: cannot parse {value!r} ({exc})") from exc
        node = out.setdefault(method, {})
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = parsed
    return out


def find_recipe(path: str | Path) -> Path:
    """A recipe path as given, else the shipped copy (a bare name or ``policies/NAME.yaml``), so the command works
    from any directory."""
    from robolearn.shipped import resolve_recipe

    return Path(resolve_recipe(path))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@dataclass
class CompareConfig:
    """The settings of one comparison; validated here so that a bad flag fails before any work."""

    env: str
    demos: int = 20
    seeds: int = 3
    noise: float = 0.4
    out: str | None = None                 # default runs/compare-<task>
    methods: tuple[str, ...] = METHODS
    steps: int | None = None               # default ENV_STEPS[env] or DEFAULT_STEPS
    eval_every: int | None = None          # default steps / EVALS_PER_RUN
    eval_episodes: int = EVAL_EPISODES
    base_recipe: str = BASE_RECIPE
    threads: int = 1                       # CPU-sized nets at batch 1-256: one thread wastes least on a shared box
    sets: dict = field(default_factory=dict)   # {method or "rl": nested overrides}
    device: str = "cpu"
    progress: bool = True
    jobs: int = 1                          # sub-runs at once, each in its own process (one per core here)
    report_only: bool = False              # no training: the table of what the runs on disk reached so far

    def __post_init__(self) -> None:
        if not isinstance(self.env, str) or not self.env:
            raise ValueError(f"--env must name an env, got {self.env!r}")
        self.methods = parse_methods(self.methods)
        _positive_int("--demos", self.demos)
        _positive_int("--seeds", self.seeds)
        if isinstance(self.noise, bool) or not isinstance(self.noise, (int, float)) or not math.isfinite(self.noise) \
                or self.noise < 0:
            raise ValueError(f"--noise must be a finite number >= 0, got {self.noise!r}")
        if self.steps is None:
            self.steps = ENV_STEPS.get(self.env, DEFAULT_STEPS)
        _positive_int("--steps", self.steps)
        if self.eval_every is None:
            self.eval_every = max(1, self.steps // EVALS_PER_RUN)
        _positive_int("--eval-every", self.eval_every)
        _positive_int("--eval-episodes", self.eval_episodes)
        if self.eval_every > self.steps:
            raise ValueError(f"--eval-every {self.eval_every} is more than --steps {self.steps}: "
                             "no evaluation would run")
        if self.steps % self.eval_every:
            raise ValueError(f"--steps {self.steps} must be a multiple of --eval-every {self.eval_every}, so that "
                             "the final evaluation is at the last step")
        _positive_int("--jobs", self.jobs)
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"--threads must be an integer >= 0 (0: torch's default), got {self.threads!r}")
        if self.out is None:
            self.out = str(Path("runs") / f"compare-{self.env.split('/')[-1]}")
        unknown = sorted(set(self.sets) - set(self.methods) - {SET_GROUP_RL})
        if unknown:
            raise ValueError(f"overrides given for method(s) not in this run: {', '.join(unknown)}")

    @property
    def rl_methods(self) -> tuple[str, ...]:
        return tuple(m for m in self.methods if m in RL_METHODS)


# ---------------------------------------------------------------------------------------------- pure aggregation
@dataclass
class SeedResult:
    """One method on one seed: its evaluation curve and what the table needs from it."""

    method: str
    seed: int
    steps: list[int]                 # env steps of the evaluations (bc: [0])
    success: list[float]             # eval success rate at each of them
    episodes: int                    # episodes per evaluation
    wall_s: float | None = None
    extra: dict = field(default_factory=dict)   # e.g. final eval/q_mean and eval/mc_return

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.success):
            raise ValueError(f"{self.method} seed {self.seed}: {len(self.steps)} steps for {len(self.success)} values")
        if not self.steps:
            raise ValueError(f"{self.method} seed {self.seed}: no evaluations")
        if self.episodes < 1:
            raise ValueError(f"{self.method} seed {self.seed}: episodes must be >= 1, got {self.episodes}")

    @property
    def final_successes(self) -> int:
        return int(round(self.success[-1] * self.episodes))


def first_step_reaching(steps: Sequence[int], values: Sequence[float], threshold: float = THRESHOLD) -> int | None:
    """The first step whose value is >= threshold (steps in increasing order), or None."""
    for s, v in zip(steps, values):
        if v >= threshold - 1e-12:
            return int(s)
    return None


def last_k_mean(values: Sequence[float], k: int = LAST_K) -> float:
    """Mean of the last k values (all of them when fewer): a collapse late in a run shows here."""
    if not values:
        raise ValueError("no values")
    tail = list(values)[-k:]
    return float(sum(tail) / len(tail))


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    m = sum(values) / n
    if n == 1:
        return float(m), 0.0
    return float(m), float(math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)))


def summarize(results: dict[str, list[SeedResult]], threshold: float = THRESHOLD, k: int = LAST_K) -> list[dict]:
    """One row per method (in the given order) with every number the table, JSON and README state."""
    from robolearn.train.evaluate import wilson_interval

    rows = []
    for method, per_seed in results.items():
        if not per_seed:
            raise ValueError(f"method {method!r} has no seeds")
        per_seed = sorted(per_seed, key=lambda r: r.seed)
        succ = sum(r.final_successes for r in per_seed)
        trials = sum(r.episodes for r in per_seed)
        lo, hi = wilson_interval(succ, trials)
        reach = [first_step_reaching(r.steps, r.success, threshold) for r in per_seed]
        reached = [s for s in reach if s is not None]
        last = [last_k_mean(r.success, k) for r in per_seed]
        last_mean, last_std = mean_std(last)
        walls = [r.wall_s for r in per_seed if r.wall_s is not None]
        rows.append({
            "method": method, "seeds": [r.seed for r in per_seed],
            "final_successes": succ, "final_trials": trials, "final_success": succ / trials, "ci95": [lo, hi],
            "final_per_seed": [r.success[-1] for r in per_seed],
            "final_step_per_seed": [r.steps[-1] for r in per_seed],
            "steps_to_threshold": reach,
            "steps_to_threshold_mean": (sum(reached) / len(reached)) if reached else None,
            "seeds_reaching": len(reached),
            "last_k_per_seed": last, "last_k_mean": last_mean, "last_k_std": last_std,
            "wall_s_per_seed": [r.wall_s for r in per_seed],
            "wall_s_mean": (sum(walls) / len(walls)) if walls else None,
            "extra_per_seed": [r.extra for r in per_seed],
        })
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _steps_text(row: dict) -> str:
    reach = row["steps_to_threshold"]
    if row["steps_to_threshold_mean"] is None:
        return "-"
    per = ", ".join("-" if s is None else str(s) for s in reach)
    mean = f"{row['steps_to_threshold_mean']:.0f}"
    if row["seeds_reaching"] < len(reach):
        return f"{mean} in {row['seeds_reaching']}/{len(reach)} seeds ({per})"
    return f"{mean} ({per})" if len(reach) > 1 else mean


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _wall_text(row: dict) -> str:
    return "-" if row["wall_s_mean"] is None else _duration(row["wall_s_mean"])


def render_markdown(rows: list[dict], settings: dict, threshold: float = THRESHOLD, k: int = LAST_K) -> str:
    """The table (one row per method) and the settings it was measured with."""
    n_seeds = max((len(r["seeds"]) for r in rows), default=0)
    head = (f"| method | final success (95% CI, {n_seeds} seeds x {settings.get('eval_episodes', '?')} episodes) "
            f"| env steps to first {_pct(threshold)} (per seed) | mean of last {k} evals (over seeds) "
            f"| wall-clock / seed |")
    lines = [head, "|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["ci95"]
        final = f"{_pct(r['final_success'])} ({_pct(lo)}-{_pct(hi)}), {r['final_successes']}/{r['final_trials']}"
        last = f"{_pct(r['last_k_mean'])} ± {100 * r['last_k_std']:.0f}"
        lines.append(f"| {r['method']} | {final} | {_steps_text(r)} | {last} | {_wall_text(r)} |")
    lines += ["", settings_line(settings)]
    return "\n".join(lines) + "\n"


def settings_line(s: dict) -> str:
    recipes = ", ".join(f"{m} {p}" for m, p in s.get("recipes", {}).items())
    sets = s.get("sets") or {}
    over = "; overrides: " + ", ".join(
        f"{m}.{k}" for m, d in sets.items() for k in _flat_keys(d)) if sets else ""
    return (f"Settings: env `{s['env']}`, {s['demos']} expert demos (noise {s['noise']}, episode seeds "
            f"{s.get('demo_seed', DEMO_SEED)}+i), seeds {', '.join(map(str, s['seed_list']))}, {s['steps']} env steps "
            f"per RL run, evaluation every {s['eval_every']} steps on {s['eval_episodes']} episodes (seeds "
            f"{EVAL_SEED}+k; bc = the base policy evaluated on the same episodes, at step 0), base "
            f"`{s['base_recipe']}` ({s.get('base_steps', '?')} BC steps); recipes: {recipes}{over}; torch threads "
            f"{s['threads']}, device {s['device']}. Final success pools the last evaluation of every seed; the "
            f"refinement methods' wall-clock is their own run (the base's BC training and evaluation are the "
            f"bc row's).")


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flat_keys(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={v}")
    return out


def mean_band(per_seed: Sequence[SeedResult]) -> dict[str, list]:
    """Mean / min / max over seeds at the evaluation steps every seed logged."""
    if not per_seed:
        raise ValueError("no seeds")
    maps = [dict(zip(r.steps, r.success)) for r in per_seed]
    common = sorted(set.intersection(*(set(m) for m in maps)))
    mean = [sum(m[s] for m in maps) / len(maps) for s in common]
    return {"steps": common, "mean": mean, "min": [min(m[s] for m in maps) for s in common],
            "max": [max(m[s] for m in maps) for s in common]}


def plot_comparison(results: dict[str, list[SeedResult]], path: str | Path, title: str = "") -> Path:
    """Success rate against env steps: a line (mean over seeds) and a min-max band per method; bc is flat."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robolearn.data.fsutil import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(8.5, 4.2), dpi=110)
    markers = iter("osD^vP*X")
    for method, per_seed in results.items():
        if method == "bc":
            level = sum(r.success[-1] for r in per_seed) / len(per_seed)
            ax.axhline(level, color="gray", linestyle="--", linewidth=1.2,
                       label=f"bc base ({_pct(level)}, n={len(per_seed)})")
            continue
        band = mean_band(per_seed)
        line, = ax.plot(band["steps"], band["mean"], marker=next(markers, "o"), markersize=4,
                        label=f"{method} (n={len(per_seed)})")
        if len(per_seed) > 1:
            ax.fill_between(band["steps"], band["min"], band["max"], alpha=0.2, color=line.get_color())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval success rate")
    ax.set_title(title or "success against env steps (mean over seeds, min-max band)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)  # outside: curves hug 0 and 1
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(Path(path), buf.getvalue())


# ---------------------------------------------------------------------------------------------- reading runs
def rl_result(run_dir: str | Path, method: str, seed: int, episodes: int, max_step: int | None = None,
              wall_s: float | None = None) -> SeedResult:
    """An RL run's evaluation curve from its scalars.csv (evaluations after ``max_step`` ignored)."""
    from robolearn.train.logging import read_scalars

    rows = read_scalars(run_dir)
    tags = ("eval/success_rate", "eval/q_mean", "eval/mc_return")
    by_tag: dict[str, dict[int, float]] = {t: {} for t in tags}
    for r in rows:
        if r["tag"] in by_tag and (max_step is None or r["step"] <= max_step):
            by_tag[r["tag"]][r["step"]] = r["value"]  # a repeated step (resumed run): the last write wins
    curve = by_tag["eval/success_rate"]
    if not curve:
        raise ValueError(f"{run_dir}: no eval/success_rate in its scalars.csv")
    steps = sorted(curve)
    extra = {}
    for t in tags[1:]:
        if steps[-1] in by_tag[t]:
            extra[t.split("/")[1]] = by_tag[t][steps[-1]]
    return SeedResult(method, seed, steps, [curve[s] for s in steps], episodes, wall_s, extra)


def bc_result(eval_doc: dict, seed: int, wall_s: float | None = None) -> SeedResult:
    return SeedResult("bc", seed, [0], [eval_doc["successes"] / eval_doc["episodes"]], int(eval_doc["episodes"]),
                      wall_s, {})


class WallClock:
    """Wall-clock of each sub-run summed over invocations (``seed{s}/wall.json``). A segment killed midway is
    counted up to its last saved progress (the mtime of ``marker``), since that is the work a resume keeps."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _locked(self):
        """An exclusive lock around a read-modify-write: with --jobs, runs of one seed share this file."""
        import contextlib
        import fcntl

        @contextlib.contextmanager
        def lock():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_suffix(".lock"), "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        return lock()

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _write(self, doc: dict) -> None:
        from robolearn.data.fsutil import atomic_write_json

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, doc, indent=2, durable=False)

    def total(self, key: str) -> float | None:
        entry = self._read().get(key)
        return None if entry is None else float(entry.get("done_s", 0.0))

    def run(self, key: str, marker: Path, fn: Callable[[], Any], fresh: bool = False) -> Any:
        """Time ``fn()`` into ``key``; ``fresh``: the sub-run starts from nothing, so earlier time is dropped."""
        with self._locked():
            doc = self._read()
            entry = {"done_s": 0.0} if fresh else doc.setdefault(key, {"done_s": 0.0})
            doc[key] = entry
            started = entry.pop("started", None)
            if started is not None and marker.exists():  # the previous invocation was killed during this sub-run
                entry["done_s"] = float(entry["done_s"]) + max(0.0, marker.stat().st_mtime - float(started))
            entry["started"] = time.time()
            self._write(doc)
        t0 = time.perf_counter()
        result = fn()
        with self._locked():
            doc = self._read()
            entry = doc.setdefault(key, {"done_s": 0.0})
            entry.pop("started", None)
            entry["done_s"] = float(entry.get("done_s", 0.0)) + time.perf_counter() - t0
            self._write(doc)
        return result


# ---------------------------------------------------------------------------------------------- the runner
@dataclass
class Plan:
    """Everything resolved from a CompareConfig before any work: recipes read, configs built and validated."""

    cfg: CompareConfig
    out: Path
    base_recipe: Any                         # bc.Recipe with the --set bc.* overrides (seed set per seed)
    base_recipe_dict: dict
    rl_configs: dict[str, Any]               # method -> RunConfig
    recipe_paths: dict[str, str]
    needs_base: dict[str, bool]

    @property
    def demos_dir(self) -> Path:
        return self.out / "demos"

    def seed_dir(self, seed: int) -> Path:
        return self.out / f"seed{seed}"

    def settings(self) -> dict:
        c = self.cfg
        return {"env": c.env, "demos": c.demos, "noise": c.noise, "demo_seed": DEMO_SEED, "seeds": c.seeds,
                "seed_list": list(range(c.seeds)), "steps": c.steps, "eval_every": c.eval_every,
                "eval_episodes": c.eval_episodes, "eval_seed": EVAL_SEED, "methods": list(c.methods),
                "base_recipe": c.base_recipe, "base_steps": self.base_recipe.train.steps,
                "recipes": {m: self.recipe_paths[m] for m in c.rl_methods}, "sets": c.sets,
                "threads": c.threads, "device": c.device}

    def fingerprint(self) -> dict:
        """What a rerun into the same directory must not change (the runs on disk depend on it)."""
        c = self.cfg
        return {"env": c.env, "demos": c.demos, "noise": c.noise, "demo_seed": DEMO_SEED,
                "eval_every": c.eval_every, "eval_episodes": c.eval_episodes, "base": self.base_recipe_dict}


def _merge(base: dict, over: dict) -> dict:
    from robolearn.train.rl_config import merge

    return merge(base, over)


def plan(cfg: CompareConfig) -> Plan:
    """Read and validate every recipe and override (a typo fails here, not hours later)."""
    import yaml

    from robolearn.envs.registry import registered
    from robolearn.rl import registry
    from robolearn.train.bc import recipe_from_dict
    from robolearn.train.rl_config import build_config

    known_envs = registered()
    if cfg.env not in known_envs:
        raise ValueError(f"unknown env {cfg.env!r}{did_you_mean(cfg.env, known_envs)}; "
                         f"known: {', '.join(known_envs)}")
    available = registry.names()
    for m in cfg.rl_methods:
        if m not in available:
            raise ValueError(f"method {m!r} is not available in this checkout (its algorithm module is missing)")
    base_path = find_recipe(cfg.base_recipe)
    base_doc = yaml.safe_load(base_path.read_text()) or {}
    base_doc = _merge(base_doc, cfg.sets.get("bc", {}))
    base_recipe = recipe_from_dict(base_doc, where=f"{base_path} (with --set bc.*)")
    rl_configs, paths, needs_base = {}, {}, {}
    for m in cfg.rl_methods:
        path = find_recipe(RECIPES[m])
        recipe = yaml.safe_load(path.read_text()) or {}
        over = _merge(cfg.sets.get(SET_GROUP_RL, {}), cfg.sets.get(m, {}))
        over = _merge(over, {"train": {"steps": cfg.steps, "eval_every": cfg.eval_every,
                                       "eval_episodes": cfg.eval_episodes, "torch_threads": cfg.threads}})
        run_cfg = build_config(m, recipe, over, where=f"{RECIPES[m]} (with --set {m}.*)")
        # The RL env must be the env the demos (and so the base) came from: collect uses its defaults.
        run_cfg.train.env_overrides = {}
        rl_configs[m], paths[m] = run_cfg, RECIPES[m]
        needs_base[m] = bool(registry.algorithm_class(m).needs_base)
    if any(needs_base.values()) and base_recipe.type not in ("consistency", "diffusion"):
        raise ValueError(f"the base recipe {cfg.base_recipe} trains a {base_recipe.type!r} policy; the refinement "
                         "methods need a chunk policy (consistency or diffusion)")
    if "conrft" in cfg.rl_methods and base_recipe.type != "consistency":
        raise ValueError(f"conrft fine-tunes a consistency policy; the base recipe {cfg.base_recipe} is "
                         f"{base_recipe.type!r}")
    return Plan(cfg, Path(cfg.out), base_recipe, base_doc, rl_configs, paths, needs_base)


def _check_manifest(p: Plan) -> None:
    """A directory made with other demos / evaluation / base settings would mix incomparable runs."""
    from robolearn.data.fsutil import atomic_write_json

    path = p.out / "experiment.json"
    want = json.loads(json.dumps(p.fingerprint(), default=list))
    if path.is_file():
        have = json.loads(path.read_text()).get("fingerprint", {})
        diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if diff:
            detail = "; ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} now" for k in diff)
            raise ValueError(f"{p.out} holds a comparison made with other settings ({detail}); use another --out")
    p.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"fingerprint": want, "settings": json.loads(json.dumps(p.settings(), default=list))},
                      indent=2)


def _bc_checkpoint_step(run_dir: Path) -> int | None:
    cfg_file = run_dir / "checkpoint" / "config.json"
    if not cfg_file.is_file():
        return None
    try:
        return int(json.loads(cfg_file.read_text()).get("meta", {}).get("step", 0))
    except (json.JSONDecodeError, TypeError, ValueError):
        return None


def _rl_env_step(run_dir: Path) -> int | None:
    from robolearn.train import rl_checkpoint

    ck = rl_checkpoint.latest_checkpoint(run_dir)
    if ck is None:
        return None
    return int(json.loads((ck / "state.json").read_text())["env_step"])


def _describe(r: SeedResult, threshold: float = THRESHOLD) -> str:
    reach = first_step_reaching(r.steps, r.success, threshold)
    wall = "" if r.wall_s is None else f", {_duration(r.wall_s)}"
    text = f"final success {r.final_successes}/{r.episodes} ({_pct(r.success[-1])})"
    if r.method != "bc":
        text += (f" at step {r.steps[-1]}, first >= {_pct(threshold)} at "
                 f"{'-' if reach is None else reach}, last-{LAST_K} mean {_pct(last_k_mean(r.success))}")
        if "q_mean" in r.extra and "mc_return" in r.extra:
            text += f", Q {r.extra['q_mean']:.3f} vs MC return {r.extra['mc_return']:.3f}"
    return text + wall


def _collect_demos(p: Plan, say: Callable[[str], None]) -> None:
    from robolearn.data.episode_store import EpisodeStore
    from robolearn.train.collect_cmd import collect

    c = p.cfg
    have = len(EpisodeStore(p.demos_dir)) if p.demos_dir.is_dir() else 0
    if have >= c.demos:
        say(f"demos: skip ({p.demos_dir} holds {have} episodes)")
        return
    say(f"demos: collecting {c.demos - have} expert episodes of {c.env} (noise {c.noise}) into {p.demos_dir}")
    s = collect(c.env, "expert", c.demos, str(p.demos_dir), noise=c.noise, seed=DEMO_SEED, progress=c.progress,
                log=None)
    say(f"demos: {s['store_episodes']} episodes, expert success {_pct(s['store_success_rate'])}")


def _base(p: Plan, seed: int, evaluate_it: bool, say: Callable[[str], None]) -> SeedResult | None:
    """Train (or resume, or skip) the BC base of ``seed``; evaluate it when bc is a method of the run."""
    import torch

    from robolearn.train.bc import load_episodes, train_bc
    from robolearn.train.checkpoint import load_policy
    from robolearn.train.evaluate import evaluate, save_json

    c = p.cfg
    sdir = p.seed_dir(seed)
    run_dir = sdir / "base"
    recipe = dataclasses.replace(p.base_recipe, train=dataclasses.replace(p.base_recipe.train, seed=seed))
    total = recipe.train.steps
    clock = WallClock(sdir / "wall.json")
    at = _bc_checkpoint_step(run_dir)
    trained = False
    if at is not None and at >= total:
        say(f"[seed {seed}] base: skip (BC checkpoint at step {at})")
    else:
        what = f"resume from step {at}" if at is not None else "start"
        say(f"[seed {seed}] base: {what}: BC {recipe.type} for {total} steps on {c.demos} demos -> {run_dir}")
        if c.threads:
            torch.set_num_threads(c.threads)
        episodes = load_episodes(p.demos_dir, success_only=recipe.train.success_only)

        def train():
            return train_bc(recipe, episodes, run_dir, resume=at is not None, data_path=str(p.demos_dir),
                            progress=c.progress, device=c.device)

        res = clock.run("base", run_dir / "checkpoint" / "config.json", train, fresh=at is None)
        trained = True
        say(f"[seed {seed}] base: trained to step {res['step']}, final loss {res['loss']:.4f}")
    if not evaluate_it:
        return None
    eval_file = sdir / "bc_eval.json"
    doc = json.loads(eval_file.read_text()) if eval_file.is_file() else None
    if doc is not None and not trained and doc.get("episodes") == c.eval_episodes and doc.get("base_step") == total:
        r = bc_result(doc, seed, _sum_wall(clock, "base", "bc_eval"))
        say(f"[seed {seed}] bc: skip (evaluated): {_describe(r)}")
        return r
    say(f"[seed {seed}] bc: evaluating the base on {c.eval_episodes} episodes")
    if c.threads:
        torch.set_num_threads(c.threads)
    policy = load_policy(run_dir)

    def run_eval():
        return evaluate(policy, c.env, episodes=c.eval_episodes, seed=EVAL_SEED, progress=c.progress)

    doc = clock.run("bc_eval", eval_file, run_eval, fresh=True)
    doc = {k: v for k, v in doc.items() if k != "per_episode"} | {"base_step": total,
                                                                 "per_episode_success": [e["success"] for e in
                                                                                         doc["per_episode"]]}
    save_json(doc, eval_file)
    r = bc_result(doc, seed, _sum_wall(clock, "base", "bc_eval"))
    say(f"[seed {seed}] bc: {_describe(r)}")
    return r


def _sum_wall(clock: WallClock, *keys: str) -> float | None:
    vals = [clock.total(k) for k in keys]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def _rl_run(p: Plan, method: str, seed: int, say: Callable[[str], None]) -> SeedResult:
    """Run, resume or skip one RL sub-run; returns its curve."""
    import gc

    from robolearn.train.online import OnlineTrainer

    c = p.cfg
    run_dir = p.seed_dir(seed) / method
    clock = WallClock(p.seed_dir(seed) / "wall.json")
    at = _rl_env_step(run_dir)
    if at is not None and at >= c.steps:
        r = rl_result(run_dir, method, seed, c.eval_episodes, c.steps, clock.total(method))
        say(f"[seed {seed}] {method}: skip (finished at step {at}): {_describe(r)}")
        return r
    what = f"resume from step {at}" if at is not None else "start"
    base = {"base": str(p.seed_dir(seed) / "base")} if p.needs_base[method] else {}
    say(f"[seed {seed}] {method}: {what}: {c.steps} env steps ({p.recipe_paths[method]}"
        f"{', base ' + base['base'] if base else ''}) -> {run_dir}")

    def train():
        trainer = OnlineTrainer(copy.deepcopy(p.rl_configs[method]), c.env, run_dir, demos=str(p.demos_dir),
                                seed=seed, device=c.device, **base)
        try:
            return trainer.run(resume=True, progress=c.progress)
        finally:
            for env in (trainer.env, trainer.eval_env):
                try:
                    env.close()
                except Exception:  # noqa: BLE001 - closing is best effort; the run's result is on disk
                    pass
            del trainer
            gc.collect()

    clock.run(method, run_dir / "latest.json", train, fresh=at is None)
    r = rl_result(run_dir, method, seed, c.eval_episodes, c.steps, clock.total(method))
    say(f"[seed {seed}] {method}: {_describe(r)}")
    return r


def results_on_disk(p: Plan) -> tuple[dict[str, list[SeedResult]], list[str]]:
    """What every sub-run of the plan has reached so far (no training): evaluated bases and RL runs with at
    least one evaluation; the second value lists what is missing or unfinished, for the table's note."""
    c = p.cfg
    results: dict[str, list[SeedResult]] = {m: [] for m in c.methods}
    notes: list[str] = []
    for seed in range(c.seeds):
        clock = WallClock(p.seed_dir(seed) / "wall.json")
        if "bc" in c.methods:
            f = p.seed_dir(seed) / "bc_eval.json"
            if f.is_file():
                results["bc"].append(bc_result(json.loads(f.read_text()), seed, _sum_wall(clock, "base", "bc_eval")))
            else:
                notes.append(f"bc seed {seed}: not evaluated yet")
        for m in c.rl_methods:
            run_dir = p.seed_dir(seed) / m
            try:
                r = rl_result(run_dir, m, seed, c.eval_episodes, c.steps, clock.total(m))
            except (FileNotFoundError, ValueError):
                notes.append(f"{m} seed {seed}: no evaluation yet")
                continue
            results[m].append(r)
            if r.steps[-1] < c.steps:
                notes.append(f"{m} seed {seed}: at {r.steps[-1]} of {c.steps} env steps")
    return results, notes


def _base_job(p: Plan, key: tuple, say: Callable[[str], None]) -> SeedResult | None:
    return _base(p, key[0], "bc" in p.cfg.methods, say)


def _rl_job(p: Plan, key: tuple, say: Callable[[str], None]) -> SeedResult:
    return _rl_run(p, key[1], key[0], say)


def _job_in_worker(job: Callable, p: Plan, key: tuple) -> SeedResult | None:
    """A sub-run in a worker process: one torch thread budget each, its lines prefixed by the worker."""
    import torch

    if p.cfg.threads:
        torch.set_num_threads(p.cfg.threads)
    p = dataclasses.replace(p, cfg=dataclasses.replace(p.cfg, progress=False))  # bars from N processes interleave
    return job(p, key, lambda msg: print(msg, flush=True))


def _schedule(p: Plan, seeds: list[int], need_base: bool, say: Callable[[str], None]) -> tuple[dict, dict]:
    """Every seed's base, then its RL runs: in this process with --jobs 1, else on a pool of --jobs worker
    processes (spawned, so no MuJoCo / torch state is forked) where a seed's RL runs start as soon as its base
    is done (no core waits for the slowest base). Every sub-run resumes from its own files, so a kill of the
    whole pool loses at most each worker's progress since its last checkpoint."""
    methods = p.cfg.rl_methods
    if p.cfg.jobs <= 1:
        bases = {seed: (_base_job(p, (seed,), say) if need_base else None) for seed in seeds}
        return bases, {(seed, m): _rl_job(p, (seed, m), say) for seed in seeds for m in methods}
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    bases: dict[int, Any] = {}
    runs: dict[tuple, Any] = {}
    with ProcessPoolExecutor(max_workers=p.cfg.jobs, mp_context=mp.get_context("spawn")) as pool:
        pending = {}
        for seed in seeds:
            if need_base:
                pending[pool.submit(_job_in_worker, _base_job, p, (seed,))] = ("base", seed)
            else:
                bases[seed] = None
                for m in methods:
                    pending[pool.submit(_job_in_worker, _rl_job, p, (seed, m))] = ("rl", (seed, m))
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                kind, key = pending.pop(fut)
                if kind == "base":
                    bases[key] = fut.result()
                    for m in methods:  # this seed's base exists: its RL runs can start
                        pending[pool.submit(_job_in_worker, _rl_job, p, (key, m))] = ("rl", (key, m))
                else:
                    runs[key] = fut.result()
    return bases, runs


def run_compare(cfg: CompareConfig, log: Callable[[str], None] | None = print) -> dict:
    """Demos -> per seed a BC base -> every method from it -> compare.md / .json / .png in ``cfg.out``."""
    import torch

    from robolearn.data.fsutil import atomic_write_json, atomic_write_text
    from robolearn.device import resolve_device

    say = log or (lambda _m: None)
    cfg.device = str(resolve_device(cfg.device))
    p = plan(cfg)
    _check_manifest(p)
    say(f"experiment compare: {', '.join(cfg.methods)} on {cfg.env} from {cfg.demos} expert demos (noise {cfg.noise}), "
        f"{cfg.seeds} seed(s), {cfg.steps} env steps per RL run, {cfg.eval_episodes} episodes every {cfg.eval_every} "
        f"env steps, {cfg.jobs} job(s) -> {p.out}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    results: dict[str, list[SeedResult]] = {m: [] for m in cfg.methods}
    seeds = list(range(cfg.seeds))
    partial: list[str] = []
    if cfg.report_only:
        results, partial = results_on_disk(p)
    else:
        _collect_demos(p, say)
        need_base = "bc" in cfg.methods or any(p.needs_base[m] for m in cfg.rl_methods)
        base_results, run_results = _schedule(p, seeds, need_base, say)
        for seed in seeds:
            if "bc" in cfg.methods:
                results["bc"].append(base_results[seed])
            for m in cfg.rl_methods:
                results[m].append(run_results[(seed, m)])
    results = {m: rs for m, rs in results.items() if rs}
    if not results:
        raise ValueError(f"{p.out} holds no evaluated run yet: nothing to report")
    rows = summarize(results)
    settings = p.settings()
    md = render_markdown(rows, settings)
    if partial:
        md = md.rstrip() + "\n\n**Partial (`--report-only` while runs are unfinished):** " + "; ".join(partial) + ".\n"
    atomic_write_text(p.out / "compare.md", md)
    plot_comparison(results, p.out / "compare.png", title=f"{cfg.env}: {cfg.demos} demos, {cfg.seeds} seed(s)")
    doc = {"settings": settings, "rows": rows,
           "curves": {m: mean_band(rs) for m, rs in results.items()},
           "runs": {m: [dataclasses.asdict(r) for r in rs] for m, rs in results.items()}}
    atomic_write_json(p.out / "compare.json", json.loads(json.dumps(doc, default=list)), indent=2)
    say(f"wrote {p.out / 'compare.md'}, {p.out / 'compare.json'}, {p.out / 'compare.png'} "
        f"({time.perf_counter() - t0:.0f} s this invocation)")
    say(md.rstrip())
    return doc
