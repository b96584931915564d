"""The command line explains itself: help for every option, one line for a missing extra."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

from phototox.apps.cli import build_parser


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "phototox"):
    """Every (name, parser) below ``parser``, nested sub-commands included."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, f"{prefix} {name}")


def test_every_option_of_every_command_has_help():
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in _subparsers(build_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not (action.help or "").strip()
    ]
    assert not missing, "options without --help text:\n" + "\n".join(missing)


def test_every_command_is_checked():
    names = {name for name, _ in _subparsers(build_parser())}
    assert {
        "phototox synth",
        "phototox explain",
        "phototox dose-response",
        "phototox zoo",
        "phototox fiji",
        "phototox serve",
    } <= names


def _run_without(modules: list[str], argv: list[str], cwd) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh interpreter in which ``modules`` cannot be imported."""
    code = textwrap.dedent(f"""
        import sys
        for name in {modules!r}:
            sys.modules[name] = None  # import raises ModuleNotFoundError, find_spec says missing
        from phototox.apps.cli import main
        sys.exit(main({argv!r}))
    """)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow  # a fresh interpreter per case (5-15 s each)
@pytest.mark.parametrize(
    ("modules", "argv", "extra"),
    [
        (["onnx"], ["zoo", "build", "--out", "pkg"], "bioimageio"),
        (["bioimageio", "bioimageio.core", "bioimageio.spec"], ["zoo", "build", "--out", "pkg"], "bioimageio"),
        (["scyjava", "jpype"], ["fiji", "--headless", "--macro", "m.ijm"], "fiji"),
    ],
)
def test_missing_extra_is_one_line_naming_it(tmp_path, modules, argv, extra):
    (tmp_path / "m.ijm").write_text('print("hello");\n')
    proc = _run_without(modules, argv, tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f'pip install -e ".[{extra}]"' in lines[0] and modules[0] in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ijm"]  # nothing created


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("onnx", ["zoo", "build", "--out", "pkg"], "bioimageio"),
        ("jpype", ["fiji", "--headless", "--macro", "m.ijm"], "fiji"),
    ],
)
def test_missing_extra_is_reported_in_process(tmp_path, monkeypatch, capsys, module, argv, extra):
    from phototox.apps.cli import main

    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f'pip install -e ".[{extra}]"' in err and module in err
    assert not any(tmp_path.iterdir())


def test_an_import_error_outside_any_extra_is_not_disguised():
    from phototox.extras import extra_for_module, missing_extra_message

    assert extra_for_module("bioimageio.core.backends") == "bioimageio"
    assert missing_extra_message(ModuleNotFoundError("x", name="numpy"), "phototox map") is None


def test_ci_runs_exactly_the_readmes_test_command():
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    test_command = blocks[1].strip()
    assert test_command.startswith("python3 -m venv .venv && . .venv/bin/activate")  # self-contained
    assert "pytest" in test_command
    ci_lines = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_lines == [test_command]


def test_demo_output_is_git_ignored():
    assert "/phototox-demo/" in (REPO / ".gitignore").read_text().splitlines()
