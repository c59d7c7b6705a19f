"""The package's layers: which module may import which (DESIGN.md's
table), and what ``import d2l_densenet`` costs.

The direction test reads every ``import`` of the package's modules with
``ast`` (inside functions too, where a lazy import hides a cycle) and
fails on an arrow the table does not allow.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import d2l_densenet

PACKAGE = Path(d2l_densenet.__file__).resolve().parent

#: Modules any module may import: they import none of ours.
LEAVES = {"devices", "messages", "checks"}
#: DESIGN.md's "may import (ours)" column, besides the leaves. Where the
#: code departs from the table it says so: ``blocks`` takes the
#: ``memory_efficient=`` levels, ``train`` the autocast dtypes of
#: ``amp``; ``blocks``, ``models`` and ``train`` take ``fast``'s CPU
#: paths (a leaf below them); ``reuse`` (the paper's Figure 5) imports
#: none of ours.
ALLOWED = {
    "blocks": {"memory_efficient", "fast"},
    "models": {"blocks", "memory_efficient", "fast"},
    "memory_efficient": set(),
    "family": {"memory_efficient", "models"},
    "mlp": set(),
    "files": set(),
    "data": {"files", "distributed"},
    "house": {"files"},
    "house_train": {"house"},
    "train": {"checkpoints", "distributed", "progress", "measure", "amp",
              "fast"},
    "fast": set(),
    "reuse": set(),
    "checkpoints": {"distributed"},
    "checkpoint_folders": set(),
    "distributed": set(),
    "progress": set(),
    "measure": set(),
    "settings": {"amp", "plots"},
    "amp": {"distributed"},
    "plots": set(),
    "stats": set(),
    **{leaf: set() for leaf in LEAVES},
}
EVERYTHING = set(ALLOWED)
ALLOWED |= {"cli": EVERYTHING, "__main__": {"cli"},
            "__init__": EVERYTHING}


def ours(path: Path) -> set[str]:
    """The package's modules that the module at ``path`` imports,
    anywhere in it (``from . import x``, ``from .x import y``,
    ``import d2l_densenet.x``, ``from d2l_densenet import x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0:
                if base != "d2l_densenet" and not base.startswith(
                        "d2l_densenet."):
                    continue
                base = base.removeprefix("d2l_densenet").lstrip(".")
            if base:
                found.add(base.split(".")[0])
            else:                       # from . import a, b
                found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("d2l_densenet."):
                    found.add(alias.name.split(".")[1])
    return found


def arrows(package: Path = PACKAGE) -> dict[str, set[str]]:
    return {p.stem: ours(p) - {p.stem}
            for p in sorted(package.glob("*.py"))}


def wrong_arrows(graph: dict[str, set[str]]) -> list[str]:
    """Each import the table does not allow, and each module the table
    does not place."""
    problems = []
    for module, imported in graph.items():
        if module not in ALLOWED:
            problems.append(f"{module}.py is not in the table (ALLOWED)")
            continue
        allowed = ALLOWED[module] | (LEAVES if module not in LEAVES
                                     else set())
        problems += [f"{module} imports {other}"
                     for other in sorted(imported - allowed)]
    return problems


def test_imports_point_down_the_table():
    graph = arrows()
    assert set(graph) == set(ALLOWED), "the table and the package differ"
    assert wrong_arrows(graph) == []


def test_direction_check_can_fail(tmp_path):
    """The planted faults of the release issue: measure reading the
    language from plots, house forwarding to house_train through a
    lazy import, data asking settings for the device."""
    for name in ("measure", "house", "data"):
        (tmp_path / f"{name}.py").write_text(
            (PACKAGE / f"{name}.py").read_text(encoding="utf-8"),
            encoding="utf-8")
    with open(tmp_path / "measure.py", "a", encoding="utf-8") as f:
        f.write("\nfrom .plots import language\n")
    with open(tmp_path / "house.py", "a", encoding="utf-8") as f:
        f.write("\ndef __getattr__(name):\n"
                "    from . import house_train\n"
                "    return getattr(house_train, name)\n")
    with open(tmp_path / "data.py", "a", encoding="utf-8") as f:
        f.write("\nimport d2l_densenet.settings\n")
    assert wrong_arrows(arrows(tmp_path)) == [
        "data imports settings", "house imports house_train",
        "measure imports plots"]


def _loaded_after(code: str) -> list[str]:
    """Which heavy libraries a fresh interpreter has imported after
    ``code``."""
    probe = (f"{code}\nimport sys\nprint(sorted(m for m in ('torch', "
             f"'torchvision', 'pandas', 'scipy', 'matplotlib') if m in "
             f"sys.modules))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                       text=True, timeout=300,
                       cwd=PACKAGE.parent)
    assert r.returncode == 0, r.stderr
    return ast.literal_eval(r.stdout.strip().splitlines()[-1])


def test_importing_the_package_loads_nothing_heavy():
    """``import d2l_densenet`` loads none of torch, torchvision, pandas,
    scipy or matplotlib: each name's module is imported on first use."""
    assert _loaded_after("import d2l_densenet") == []


@pytest.mark.parametrize("code,loaded", [
    ("from d2l_densenet import densenet", ["torch"]),
    ("import d2l_densenet as dd; dd.densenet121()", ["torch"]),
    ("from d2l_densenet.settings import choose", ["torch"]),
    ("from d2l_densenet import cli", ["torch"]),
    ("import d2l_densenet as dd; dd.family.WEIGHTS",
     ["torch", "torchvision"]),
    ("import d2l_densenet as dd; dd.read_house_data", ["pandas", "torch"]),
])
def test_torchvision_and_pandas_are_imported_where_needed(code, loaded):
    assert _loaded_after(code) == loaded


def test_public_names_and_modules_resolve():
    """Every name of ``__all__`` is found (and is the module's object);
    the modules are attributes; an unknown name is an AttributeError."""
    import importlib

    for name in d2l_densenet.__all__:
        module = importlib.import_module(
            f"d2l_densenet.{d2l_densenet._WHERE[name]}")
        assert getattr(d2l_densenet, name) is getattr(module, name), name
    assert set(d2l_densenet.__all__) == set(d2l_densenet._WHERE)
    assert d2l_densenet.family is importlib.import_module(
        "d2l_densenet.family")
    assert "densenet" in dir(d2l_densenet)
    with pytest.raises(AttributeError, match="no attribute 'densenett'"):
        _ = d2l_densenet.densenett
