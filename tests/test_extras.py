"""Dependencies are honest: every import of the library is a core dependency or an extra with a one-line hint."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import tomllib

from phototox.extras import EXTRA_MODULES, missing_extra_message

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _distribution(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]


def _top_level_modules(distribution: str) -> set[str]:
    """Import names a distribution provides (from the installed environment)."""
    provides = importlib.metadata.packages_distributions()
    wanted = distribution.lower().replace("_", "-")
    return {m for m, dists in provides.items() if wanted in {d.lower().replace("_", "-") for d in dists}}


def _library_imports() -> set[str]:
    """Top-level names of every module the library imports (at top level or inside functions)."""
    names = set()
    for path in (ROOT / "phototox").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module)
    return names


def test_every_extra_of_pyproject_is_known_and_complete():
    extras = {k: v for k, v in PYPROJECT["optional-dependencies"].items() if k != "all"}
    assert set(extras) == set(EXTRA_MODULES), "extras.EXTRA_MODULES must name every extra of pyproject.toml"
    for extra, requirements in extras.items():
        listed = {m.split(".")[0] for m in EXTRA_MODULES[extra]}
        for requirement in requirements:
            name = _distribution(requirement)
            if name.lower().startswith(("numpy", "scipy")) or name == "cellprofiler-library-nightly":
                continue  # version pins of core packages; cellprofiler_library comes with core's nightly
            provided = _top_level_modules(name)
            if not provided:
                pytest.skip(f"{name} is not installed here; cannot map it to its modules")
            assert provided & listed, f"extra {extra}: {name} provides {sorted(provided)}, none in EXTRA_MODULES"


def test_every_library_import_is_core_stdlib_or_an_extra():
    core = set()
    for requirement in PYPROJECT["dependencies"]:
        core |= _top_level_modules(_distribution(requirement)) or {_distribution(requirement).replace("-", "_")}
    extras = {m.split(".")[0] for modules in EXTRA_MODULES.values() for m in modules}
    unexplained = sorted(
        name
        for name in _library_imports()
        if (top := name.split(".")[0]) not in sys.stdlib_module_names
        and top not in core
        and top not in extras
        and top != "phototox"
    )
    assert not unexplained, f"imported by phototox/ but neither a core dependency nor an extra: {unexplained}"


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_a_missing_extra_module_gives_its_one_line_hint(extra):
    module = EXTRA_MODULES[extra][-1]
    message = missing_extra_message(ModuleNotFoundError(f"No module named {module!r}", name=module), "this command")
    assert message is not None and f"'{extra}'" in message and f'.[{extra}]"' in message and "\n" not in message


def test_core_needs_no_extra_for_resampling_and_domain_statistics():
    """scikit-image (resampling to the model's scale) and scikit-learn (domain statistics) are core."""
    core = {_distribution(r) for r in PYPROJECT["dependencies"]}
    assert {"scikit-image", "scikit-learn"} <= core
    assert "pillow" not in core  # declared once and never imported
