"""The layout the README promises: the library imports no application and no front end.

Library = every module of ``phototox/`` outside ``phototox/apps/`` (the CLI, the HTTP server, the
annotation web app) and ``phototox/__main__.py``. Front ends: the CellProfiler plugin, the Fiji
bridge (``phototox_fiji``), the bioimage.io builder (``phototox_zoo``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("phototox.apps", "phototox_fiji", "phototox_zoo", "cellprofiler", "cellprofiler_core", "imagej", "scyjava")


def _module_name(package_root: Path, path: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> set[str]:
    """Absolute names of every module ``path`` imports, at top level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def library_violations(package_root: Path) -> list[str]:
    """``file: imports X`` for every library module that imports an application or front end."""
    found = []
    for path in sorted(package_root.rglob("*.py")):
        rel = path.relative_to(package_root)
        if rel.parts[0] == "apps" or rel == Path("__main__.py"):
            continue
        for name in sorted(imported_modules(path, _module_name(package_root, path))):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                found.append(f"{rel}: imports {name}")
    return found


def test_the_library_imports_no_application_or_front_end():
    assert library_violations(ROOT / "phototox") == []


def test_the_check_finds_a_forbidden_import(tmp_path):
    """The check can fail: a library module importing the CLI (relatively, inside a function) is caught."""
    pkg = tmp_path / "phototox"
    (pkg / "apps").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "apps" / "__init__.py").write_text("")
    (pkg / "apps" / "cli.py").write_text("from ..inference import x\n")  # apps may import the library
    (pkg / "inference.py").write_text("def f():\n    from .apps.cli import main\n")
    (pkg / "plots.py").write_text("import phototox_zoo.build\n")
    assert library_violations(pkg) == [
        "inference.py: imports phototox.apps.cli",
        "inference.py: imports phototox.apps.cli.main",
        "plots.py: imports phototox_zoo.build",
    ]


@pytest.mark.slow
def test_importing_every_library_module_loads_no_application():
    """The same at run time: import each library module and look at what got loaded."""
    package_root = ROOT / "phototox"
    names = [
        _module_name(package_root, path)
        for path in sorted(package_root.rglob("*.py"))
        if path.relative_to(package_root).parts[0] != "apps" and path.name != "__main__.py"
    ]
    code = textwrap.dedent(
        f"""
        import importlib, sys
        for name in {names!r}:
            importlib.import_module(name)
        bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))
        print(len({names!r}), bad)
        sys.exit(1 if bad else 0)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert int(done.stdout.split()[0]) > 40  # it really walked the library


def test_the_command_line_parser_does_not_import_torch():
    """``phototox --help`` stays fast: building the parser loads no deep-learning framework."""
    code = "import sys; from phototox.apps.cli import build_parser; build_parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnxruntime', 'dask', 'zarr')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_light_window_constant_is_the_networks():
    """``defaults.WINDOW`` (for torch-free modules) repeats the architecture's, which zoo packages carry alone."""
    from phototox.defaults import WINDOW
    from phototox.models import architectures

    assert architectures.WINDOW == WINDOW


# --- folders by concept, the arrows between them, no loops ---------------------------------------

BASE_MODULES = {"__init__", "__main__", "errors", "extras", "defaults", "shapes", "schema"}
"""Flat modules of ``phototox/``: the package's public API and what every folder may use."""
ALLOWED = {
    "base": set(),
    "io": {"base"},
    "stats": {"base", "io"},
    "synth": {"base", "io"},
    "models": {"base", "io"},
    "maps": {"base", "io", "models"},
    "trust": {"base", "io", "models", "maps", "stats"},
    "results": {"base", "io", "models", "maps", "trust", "stats"},
    "timecourse": {"base", "io", "models", "maps", "trust", "stats", "results"},
    "training": {"base", "io", "models", "maps", "trust", "stats", "results"},
    "screens": {"base", "io", "models", "maps", "trust", "stats", "results"},
    "experiment": {"base", "io", "models", "maps", "trust", "stats", "results", "synth", "timecourse"},
    "live": {"base", "io", "models", "maps", "trust", "stats", "results", "synth", "timecourse"},
    "apps": {
        "base",
        "io",
        "models",
        "maps",
        "trust",
        "stats",
        "results",
        "synth",
        "timecourse",
        "training",
        "screens",
        "experiment",
        "live",
    },
}
"""Folder -> the folders it may import (the layering in CONTRIBUTING.md). ``base``: the flat modules."""
HEAVY = {
    *("torch", "onnx", "onnxruntime", "matplotlib", "mpl_toolkits", "scipy", "skimage", "sklearn", "imageio"),
    *("tifffile", "tqdm", "PIL", "pandas", "yaml", "pydantic", "requests", "urllib3"),
    *("dask", "distributed", "zarr", "ome_zarr", "numcodecs", "fsspec"),  # extras from here on
    *("napari", "qtpy", "PyQt6", "magicgui", "scyjava", "jpype", "imagej", "pymmcore_plus", "useq", "psygnal"),
    *("cellprofiler_core", "cellprofiler_library", "bioimageio", "playwright"),
}
"""Third-party packages slow to import or in an extra: an import inside a function may defer one."""
CLI_HEAVY = {"numpy"}
"""Also deferred by ``phototox/apps/``: ``phototox --help`` starts without numpy."""


def folder_of(module: str) -> str:
    """``phototox.maps.dense`` -> ``maps``; the flat modules -> ``base``; ``__main__`` is an application."""
    parts = module.split(".")
    if len(parts) == 1 or (len(parts) == 2 and parts[1] in BASE_MODULES):
        return "apps" if parts[-1] == "__main__" else "base"
    return parts[1]


def import_graph(package_root: Path) -> dict[str, list[tuple[str, bool]]]:
    """Module -> [(imported phototox module, inside a function?)], type-checking-only imports left out."""
    names = {_module_name(package_root, p): p for p in package_root.rglob("*.py")}
    graph: dict[str, list[tuple[str, bool]]] = {}
    for module, path in names.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(n)
            for block in tree.body
            if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
            for n in ast.walk(block)
        }
        in_function = {
            id(n)
            for fn in ast.walk(tree)
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(fn)
        }
        edges = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only:
                for target in imported_modules_of(node, module, path):
                    while target and target not in names:
                        target = target.rpartition(".")[0]
                    if target and target != module:
                        edges.append((target, id(node) in in_function))
        graph[module] = edges
    return graph


def imported_modules_of(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> list[str]:
    """Absolute names one import statement reaches (``from a import b``: ``a.b`` and ``a``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, node.module] if node.module else parts)
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def folder_violations(graph: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """``a -> b`` for every import from one folder into another that the layering does not allow."""
    found = set()
    for module, edges in graph.items():
        for target, _ in edges:
            src, dst = folder_of(module), folder_of(target)
            if src != dst and dst not in ALLOWED.get(src, set()) and module != "phototox":
                found.add(f"{module} -> {target} ({src} may not import {dst})")
    return sorted(found)


def import_loops(graph: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a loop (imports inside functions too)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    loops = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w, _ in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return loops


def test_the_folders_are_the_concepts():
    """``phototox/`` holds the base modules and one folder per concept, nothing else."""
    package_root = ROOT / "phototox"
    folders = {p.name for p in package_root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    flat = {p.stem for p in package_root.glob("*.py")}
    assert folders == set(ALLOWED) - {"base"}
    assert flat == BASE_MODULES


def test_folders_import_only_the_folders_below_them():
    assert folder_violations(import_graph(ROOT / "phototox")) == []


def test_there_is_no_import_loop():
    assert import_loops(import_graph(ROOT / "phototox")) == []


def test_the_checks_find_a_forbidden_arrow_and_a_loop(tmp_path):
    """The checks can fail: maps importing training, and two modules importing each other inside functions."""
    pkg = tmp_path / "phototox"
    for folder in ("maps", "training"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "maps" / "dense.py").write_text("from phototox.training import train\n")
    (pkg / "training" / "train.py").write_text("def f():\n    from ..maps import dense\n")
    graph = import_graph(pkg)
    assert folder_violations(graph) == [
        "phototox.maps.dense -> phototox.training (maps may not import training)",
        "phototox.maps.dense -> phototox.training.train (maps may not import training)",
    ]
    assert import_loops(graph) == [["phototox.maps.dense", "phototox.training.train"]]


def test_every_package_is_installed():
    """A wheel (non-editable install) carries every folder: pyproject's package list names them all."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        _module_name(ROOT / "phototox", p.parent / "__init__.py") for p in (ROOT / "phototox").rglob("__init__.py")
    }
    assert found <= listed, sorted(found - listed)


def test_the_classes_are_the_networks():
    """``defaults.CLASSES`` (for torch-free modules) repeats the architecture's, as WINDOW does."""
    from phototox.defaults import CLASSES
    from phototox.models import architectures

    assert architectures.CLASSES == CLASSES


SAME_MEANING = {"--doses": "the light doses: values to synthesise (synth) or each field's dose as a table (timecourse)"}
"""Options whose values differ in form on different commands but mean the same thing."""


def test_one_meaning_per_option_name():
    """An option spelled the same on two commands takes the same kind of value (type, choices, flag or not)."""
    from phototox.apps.cli import build_parser

    parser = build_parser()
    meanings: dict[str, dict[tuple, list[str]]] = {}
    for sub in parser._subparsers._group_actions:
        for command, p in sub.choices.items():
            for action in p._actions:
                for name in action.option_strings:
                    kind = (
                        "flag" if action.nargs == 0 else "value",
                        getattr(action.type, "__name__", action.type or "str"),
                        tuple(sorted(action.choices or ())),
                    )
                    meanings.setdefault(name, {}).setdefault(kind, []).append(command)
    two = {name: kinds for name, kinds in meanings.items() if len(kinds) > 1 and name not in SAME_MEANING}
    assert two == {}


def test_the_public_api_is_small_lazy_and_documented():
    """``import phototox`` loads no torch; each public name resolves to a documented object."""
    code = (
        "import sys, phototox; light = 'torch' not in sys.modules; "
        "objs = [getattr(phototox, n) for n in phototox.__all__ if n not in ('__version__', 'CITATION')]; "
        "print(light, all(o.__doc__ for o in objs), sorted(phototox.__all__) == sorted(dir(phototox)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]


def top_level_imports(package_root: Path) -> dict[str, set[str]]:
    """Module -> what importing it imports at once: its top-level imports and its package's ``__init__``."""
    names = {_module_name(package_root, p): p for p in package_root.rglob("*.py")}
    found: dict[str, set[str]] = {}
    for module, path in names.items():
        tree = ast.parse(path.read_text(), str(path))
        top = {
            t
            for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for t in imported_modules_of(node, module, path)
        }
        parent = module.rpartition(".")[0]
        found[module] = {t for t in top if t != module} | ({parent} if parent else set())
    return found


def slow_to_import(
    module: str, top: dict[str, set[str]], heavy: set[str], loaded: frozenset[str] = frozenset()
) -> bool:
    """Importing ``module`` loads a package of ``heavy`` (directly or through phototox modules);
    ``loaded``: packages already imported (the importer's own), which cost nothing again."""
    seen, stack = set(), [module]
    while stack:
        name = stack.pop()
        if name in seen or name in loaded:
            continue
        seen.add(name)
        root = name.split(".")[0]
        if root in heavy:
            return True
        if root == "phototox":
            stack.extend(top.get(name, {name.rpartition(".")[0]} if "." in name else set()))
    return False


def deferred_without_reason(package_root: Path) -> list[str]:
    """``module:line X`` for each import inside a function that defers nothing slow and no optional extra.

    The reasons allowed: start-up cost (the target loads a :data:`HEAVY` package; for the CLI, numpy
    too), an optional extra (the import sits in ``try``), the lazy public API (``phototox/__init__``).
    """
    top = top_level_imports(package_root)
    found = []
    for path in sorted(package_root.rglob("*.py")):
        module = _module_name(package_root, path)
        if module == "phototox":
            continue
        heavy = HEAVY | CLI_HEAVY if module.startswith("phototox.apps") or module == "phototox.__main__" else HEAVY
        parts = module.split(".")
        loaded = frozenset(".".join(parts[:i]) for i in range(1, len(parts)))  # its packages ran already
        tree = ast.parse(path.read_text(), str(path))
        in_try = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for b in t.body for n in ast.walk(b)}
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in in_try:
                    continue
                targets = imported_modules_of(node, module, path)
                if not any(slow_to_import(t, top, heavy, loaded) for t in targets):
                    found.append(f"{module}:{node.lineno} {ast.unparse(node)}")
    return sorted(set(found))


def test_imports_inside_functions_defer_something_slow():
    """No import hides in a function unless it defers a slow package or an optional extra."""
    assert deferred_without_reason(ROOT / "phototox") == []


def test_the_deferral_check_finds_a_light_import(tmp_path):
    """The check can fail: a function importing a light sibling is caught; torch, extras in try, are not."""
    pkg = tmp_path / "phototox"
    (pkg / "maps").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "maps" / "__init__.py").write_text("")
    (pkg / "maps" / "light.py").write_text("import json\n")
    (pkg / "maps" / "slow.py").write_text("import torch\n")
    (pkg / "maps" / "user.py").write_text(
        "def f():\n    from phototox.maps import light\n    from phototox.maps.slow import x\n"
        "    try:\n        import napari\n    except ImportError:\n        pass\n"
        "def g():\n    import json\n"
    )
    (pkg / "timecourse").mkdir()
    (pkg / "timecourse" / "__init__.py").write_text("import torch\n")  # a heavy package __init__ ...
    (pkg / "timecourse" / "measures.py").write_text("M = 1\n")
    (pkg / "timecourse" / "plots.py").write_text("def f():\n    from phototox.timecourse.measures import M\n")
    assert deferred_without_reason(pkg) == [
        "phototox.maps.user:2 from phototox.maps import light",
        "phototox.maps.user:9 import json",
        "phototox.timecourse.plots:2 from phototox.timecourse.measures import M",  # ... already ran for plots
    ]
