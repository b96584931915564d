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
