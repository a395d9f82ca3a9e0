"""Imports flow one way: a module may import its own layer or a lower one, never a higher one.

Why: a lower layer importing a higher one makes cycles (deploy -> bench -> deploy), drags heavy
code into light tools (an exporter building a MuJoCo scene), and lets a rewrite of one layer break
the ones beneath it. The order (low to high) is

    envs < hardware < sim < data < policies < rl < train < deploy < bench < cli

``sim`` sits just above ``hardware`` (the sim arm reads the robot config; a robot config never
needs the simulator). The top-level modules ``robolearn/__init__.py``, ``config_io.py`` and
``device.py`` are the base: every layer may import them and they import no layer, except the
exceptions listed in ``BASE_EXCEPTIONS``. ``shipped.py`` (finding the recipes and task configs shipped
in the package by name) is base too: the sim layer resolves task configs and the train, bench and API
code resolve recipes through it, and it only knows folder paths. Every ``import`` and ``from ... import`` statement
counts, including ones inside functions: a lazy import is still a dependency, it only fails later.
Imports by string (the env registry's ``"module:attr"`` factories, ``importlib.import_module``)
are plug-in points resolved at run time and are not checked here.
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "robolearn"

BASE = -1.0
LAYERS: dict[str, float] = {
    "envs": 0, "hardware": 1, "sim": 1.5, "data": 2, "policies": 3, "rl": 4, "train": 5,
    "deploy": 6, "bench": 7, "cli": 8,
    "api": 8,  # robolearn/api.py: the Python API wraps the trainers and evaluation, like the CLI does
}
BASE_MODULES = {"__init__", "config_io", "device", "shipped"}
# (importing module, imported module) pairs allowed across the rule, each with its reason.
BASE_EXCEPTIONS = {
    # robolearn.make / robolearn.registered_envs are the package's front door to the env registry.
    ("robolearn", "robolearn.envs.registry"),
}


@dataclasses.dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str
    importer_layer: str
    imported_layer: str

    def __str__(self) -> str:
        return (f"{self.path}:{self.line}: {self.importer} ({self.importer_layer}) imports "
                f"{self.imported} ({self.imported_layer})")


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of ``path`` inside the package directory ``root`` (``__init__`` names the package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str, root: Path) -> tuple[float | None, str]:
    """(rank, name) of the layer a dotted module belongs to; rank None for a module in no layer."""
    parts = module.split(".")
    if len(parts) == 1:
        return BASE, "base"
    first = parts[1]
    if first in LAYERS:
        return LAYERS[first], first
    if first in BASE_MODULES:
        return BASE, "base"
    if len(parts) == 2 and not (root / first).is_dir() and not (root / f"{first}.py").exists():
        return BASE, "base"  # ``from robolearn import make``: a name defined in robolearn/__init__.py
    return None, f"no layer: add {first!r} to LAYERS or BASE_MODULES in tests/test_layering.py"


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``tree``; ``from pkg import sub`` names ``pkg.sub``."""
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from robolearn import deploy`` imports a layer: judge each imported name as a submodule.
            out += [(node.lineno, f"{base}.{alias.name}" if alias.name != "*" else base) for alias in node.names]
    return sorted(out)


def find_violations(root: Path) -> list[Violation]:
    """Every import under the package directory ``root`` that goes from a layer to a higher one."""
    root = Path(root)
    pkg = root.name
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        rank, name = layer_of(module, root)
        rel = str(path.relative_to(root.parent))
        if rank is None:  # a new top-level module or sub-package must be given a place in the order
            found.append(Violation(rel, 0, module, "-", name, "-"))
        tree = ast.parse(path.read_text(), filename=rel)
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            if target != pkg and not target.startswith(pkg + "."):
                continue  # third-party or standard library
            t_rank, t_name = layer_of(target, root)
            if rank is None or t_rank is None:
                ok = False
            elif rank == BASE:
                ok = t_rank == BASE or any(module == m and (target == t or target.startswith(t + "."))
                                           for m, t in BASE_EXCEPTIONS)
            else:
                ok = t_rank <= rank
            if not ok:
                found.append(Violation(rel, line, module, target, name, t_name))
    return found


def test_no_module_imports_a_higher_layer():
    assert PACKAGE_ROOT.is_dir(), PACKAGE_ROOT
    violations = find_violations(PACKAGE_ROOT)
    assert not violations, "imports against the layer order (envs < hardware < sim < data < policies < rl < " \
        "train < deploy < bench < cli):\n" + "\n".join(str(v) for v in violations)


def _write(root: Path, rel: str, text: str = "") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_flags_back_imports(tmp_path):
    root = tmp_path / "robolearn"
    _write(root, "__init__.py", "from robolearn.envs.registry import make\n")  # the allowed base exception
    _write(root, "config_io.py", "def load():\n    from robolearn.data import store\n")  # base -> data
    _write(root, "envs/__init__.py")
    _write(root, "envs/registry.py", "import robolearn\nfrom robolearn.config_io import load\n")
    _write(root, "hardware/__init__.py")
    _write(root, "hardware/robot.py", "from robolearn.sim import arm\n")  # hardware -> sim
    _write(root, "sim/__init__.py")
    _write(root, "sim/arm.py", "from robolearn.hardware import robot\nfrom robolearn import make\n")
    _write(root, "data/__init__.py")
    _write(root, "data/store.py", "import numpy\n\n\ndef f():\n    from ..train import loop\n")  # lazy, relative
    _write(root, "data/export.py", "from robolearn import deploy\n")  # a layer imported as a name
    _write(root, "train/__init__.py")
    _write(root, "train/loop.py", "from . import helpers\nfrom robolearn.data.store import f\n")
    _write(root, "train/helpers.py")
    _write(root, "deploy/__init__.py")
    _write(root, "deploy/proc.py", "import robolearn.bench.loop as lb\n")  # deploy -> bench
    _write(root, "bench/__init__.py")
    _write(root, "bench/loop.py", "from robolearn.deploy import proc\nfrom robolearn.bench.other import x\n")
    _write(root, "plugins.py", "import os\n")  # a top-level module in no layer

    got = {(v.path, v.line, v.imported) for v in find_violations(root)}
    assert got == {
        ("robolearn/config_io.py", 2, "robolearn.data.store"),
        ("robolearn/hardware/robot.py", 1, "robolearn.sim.arm"),
        ("robolearn/data/store.py", 5, "robolearn.train.loop"),
        ("robolearn/data/export.py", 1, "robolearn.deploy"),
        ("robolearn/deploy/proc.py", 1, "robolearn.bench.loop"),
        ("robolearn/plugins.py", 0, "-"),  # a module in no layer is reported, not ignored
    }, sorted(got)


def test_the_checker_flags_imports_of_an_unlayered_module(tmp_path):
    root = tmp_path / "robolearn"
    _write(root, "__init__.py")
    _write(root, "plugins.py")
    _write(root, "data/__init__.py")
    _write(root, "data/x.py", "from robolearn import plugins\n")
    msgs = [str(v) for v in find_violations(root)]
    assert len(msgs) == 2 and all("add 'plugins' to LAYERS" in m for m in msgs), msgs
    assert any(m.startswith("robolearn/data/x.py:1:") for m in msgs), msgs
