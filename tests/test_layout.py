"""The house: one import name, packages by concept in layers, small modules, no import circle.

The layers, lowest first: a module imports (at its top) only from its own package or a lower
layer, so the folder tree reads as the data path and nothing runs back up.
"""

import ast
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"errors", "hashing", "fsutil", "stats", "log"},  # cai/*.py: what everything uses
    {"constitution"}, {"config"}, {"store"}, {"inputs"}, {"backends", "engines"}, {"feedback"},
    {"training"}, {"evaluation"}, {"publish"}, {"stages"}, {"review"}, {"report"}, {"runs"},
    {"cli", "api", "__init__"},
]
MAX_LINES = 300


def _modules() -> dict:
    """Module name -> file, as installed: pipeline/ is `cai`, constitution/ is `cai.constitution`."""
    mods = {}
    for folder, prefix in (("pipeline", ["cai"]), ("constitution", ["cai", "constitution"])):
        for path in (ROOT / folder).rglob("*.py"):
            parts = [*prefix, *path.relative_to(ROOT / folder).with_suffix("").parts]
            mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _top_imports(path: Path, name: str, mods: dict) -> set:
    """The cai modules `name` imports when it is imported (not those imported inside functions);
    a package's own `__init__` runs first for any of its modules, so it is no edge."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                base = ".".join(pkg[:len(pkg) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in mods and t != name and not name.startswith(t + ".")}
    return out


def _layer(name: str) -> int:
    part = name.split(".")[1] if "." in name else "__init__"
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_every_module_belongs_to_a_layer_and_imports_only_downwards():
    mods = _modules()
    up = []
    for name, path in mods.items():
        for target in _top_imports(path, name, mods):
            if _layer(target) > _layer(name):
                up.append(f"{name} -> {target}")
    assert up == []


def test_no_import_circle():
    mods = _modules()
    graph = {name: _top_imports(path, name, mods) for name, path in mods.items()}
    state, circles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                circles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"
    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT)): n for p in _modules().values()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_pyproject_installs_every_package_under_cai():
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert set(setup["packages"]) == packages
    assert setup["package-dir"] == {"cai": "pipeline", "cai.constitution": "constitution"}


def test_cai_is_the_only_import_name(tmp_path):
    """Outside the checkout `import cai` works and the folders' own names import nothing."""
    code = ("import importlib.util, cai, cai.constitution, cai.cli\n"
            "print(importlib.util.find_spec('pipeline'), importlib.util.find_spec('constitution'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]
