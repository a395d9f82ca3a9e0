"""Config files shipped inside the package: policy recipes and sim task configs, found by name or path.

Why: the README points at repository paths (``policies/rlpd.yaml``, ``sim/pick_cube.yaml``) that only
exist when the command runs from a checkout, so ``train rl --config policies/rlpd.yaml`` or
``bench policy`` failed from any other folder, and an installed package had no recipes at all. The
top-level ``policies/`` and ``sim/`` folders stay the editable copies a user points to; the package
holds byte-identical copies (``robolearn/recipes/``, ``robolearn/sim/configs/``; a test keeps them so
and ``python -m robolearn.shipped --sync`` or ``make sync-configs`` re-copies them after an edit).

Resolution follows ``robolearn.hardware.robot_config.resolve_robot``: an existing file always wins (a
user's edited copy), a bare name (``rlpd``, ``rlpd.yaml``) or the README's repository path
(``policies/rlpd.yaml``) falls back to the shipped copy, and anything else is an error naming the path,
a close match and the shipped names.

This is a base module (next to ``config_io``): the sim layer (task configs), the bench and train layers
(recipes) and the API all resolve through it, so it may import no layer - it only knows folder paths.
"""
from __future__ import annotations

import difflib
import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Kind:
    """One family of shipped files: where the package keeps them and which repository folder they copy."""

    label: str        # how errors name a file of this kind ("recipe", "task config")
    folder: Path      # the shipped copies
    repo_dir: str     # the editable copies' folder at the repository root

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.yaml"))


RECIPES = Kind("recipe", PACKAGE_DIR / "recipes", "policies")
TASK_CONFIGS = Kind("task config", PACKAGE_DIR / "sim" / "configs", "sim")
ROBOT_CONFIGS = Kind("robot config", PACKAGE_DIR / "hardware" / "configs", "hardware")  # resolved by hardware/
TELEOP_CONFIGS = Kind("teleop config", PACKAGE_DIR / "hardware" / "teleop" / "configs", "hardware/teleop")
KINDS = (RECIPES, TASK_CONFIGS, ROBOT_CONFIGS, TELEOP_CONFIGS)


def resolve(kind: Kind, path: str | Path) -> Path:
    """``path`` if it is a file; else the shipped copy for a bare name or ``<repo_dir>/NAME.yaml``."""
    if isinstance(path, str) and not path.strip():
        raise ValueError(f"{kind.label}: empty name (shipped {kind.label}s: {', '.join(kind.names())})")
    p = Path(path)
    if p.is_file():
        return p
    stem = p.stem if p.suffix in (".yaml", ".yml") else p.name
    shipped = kind.folder / f"{stem}.yaml"
    bare = len(p.parts) == 1
    if (bare or p.as_posix() == f"{kind.repo_dir}/{p.name}") and shipped.is_file():
        return shipped
    names = kind.names()
    close = difflib.get_close_matches(stem, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise FileNotFoundError(f"{kind.label} {str(path)!r} not found (not a file; {hint}shipped {kind.label}s: "
                            f"{', '.join(names)})")


def resolve_recipe(path: str | Path) -> Path:
    """A policy recipe: ``rlpd``, ``policies/rlpd.yaml`` from any folder, or a path to the user's own file."""
    return resolve(RECIPES, path)


def resolve_task_config(path: str | Path) -> Path:
    """A sim task config: ``pick_cube``, ``sim/pick_cube.yaml`` from any folder, or a path to a file."""
    return resolve(TASK_CONFIGS, path)


def shipped_recipes() -> list[str]:
    return RECIPES.names()


def shipped_task_configs() -> list[str]:
    return TASK_CONFIGS.names()


def repo_root() -> Path | None:
    """The checkout this package runs from (it has the editable folders), or None for an installed package."""
    root = PACKAGE_DIR.parent
    return root if all((root / k.repo_dir).is_dir() for k in KINDS) else None


def out_of_sync(root: Path | None = None) -> list[str]:
    """Shipped files that differ from (or are missing next to) the editable copies, as repo-relative names."""
    root = root or repo_root()
    if root is None:
        raise FileNotFoundError(f"no checkout around {PACKAGE_DIR} (the editable policies/, sim/ and hardware/ "
                                "folders live only in the repository)")
    stale = []
    for kind in KINDS:
        edit = {p.name for p in (root / kind.repo_dir).glob("*.yaml")}
        ship = {p.name for p in kind.folder.glob("*.yaml")}
        for name in sorted(edit | ship):
            if name not in edit or name not in ship or not filecmp.cmp(root / kind.repo_dir / name,
                                                                        kind.folder / name, shallow=False):
                stale.append(f"{kind.repo_dir}/{name}")
    return stale


def sync(root: Path | None = None) -> list[str]:
    """Copy every editable file into the package (and drop shipped files whose editable copy is gone)."""
    root = root or repo_root()
    stale = out_of_sync(root)
    for rel in stale:
        repo_dir, name = rel.split("/")
        kind = next(k for k in KINDS if k.repo_dir == repo_dir)
        src, dst = root / rel, kind.folder / name
        if src.is_file():
            kind.folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        else:
            dst.unlink()
    return stale


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m robolearn.shipped",
                                     description="keep the package's shipped configs equal to the editable copies")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--sync", action="store_true", help="copy policies/, sim/, hardware/ *.yaml into the package")
    mode.add_argument("--check", action="store_true", help="exit 1 naming every shipped copy that differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = out_of_sync()
        for rel in stale:
            print(f"out of sync: {rel}")
        print("shipped configs match the editable copies" if not stale else f"{len(stale)} file(s) differ: "
              "run `make sync-configs` (python -m robolearn.shipped --sync)")
        return 1 if stale else 0
    changed = sync()
    print(f"synced {len(changed)} file(s): {', '.join(changed)}" if changed else "shipped configs already in sync")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
