"""MapSettings is the one source of map options: every front end follows it, and a drift fails here."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest
from conftest import REPO

from phototox.apps.cli import build_parser
from phototox.errors import PhototoxError
from phototox.maps.settings import MapSettings, option_names
from phototox.results.analysis_requests import settings_from

MAP_COMMANDS = ("predict", "map", "dose-response")


def _subparser(name: str):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("command", MAP_COMMANDS)
def test_cli_options_are_generated_from_the_settings(command):
    options = {a.dest: a for a in _subparser(command)._actions}
    defaults = MapSettings()
    for name in option_names():
        assert name in options, f"phototox {command} lacks --{name}"
        assert options[name].default == getattr(defaults, name)
        assert options[name].help
    assert tuple(options["mode"].choices) == tuple(MapSettings.__dataclass_fields__["mode"].metadata["choices"])


def test_server_parameters_follow_the_settings():
    defaults = MapSettings()
    blank, pixel_size = settings_from({})  # colour is not a request parameter: the pixels arrive grey
    assert blank == defaults and pixel_size is None
    parsed, _ = settings_from({"stride": "16", "mode": "exact", "threshold": "0.3", "normalisation": "global"})
    assert (parsed.stride, parsed.mode, parsed.threshold, parsed.normalisation) == (
        16,
        "exact",
        0.3,
        "global",
    )


@pytest.mark.parametrize(
    "params, field",
    [
        ({"stride": "abc"}, "stride"),
        ({"mode": "fast"}, "mode"),
        ({"threshold": "1.5"}, "threshold"),
        ({"stride": "12"}, "stride"),
        ({"normalisation": "z"}, "normalisation"),
    ],
)
def test_bad_values_name_the_option(params, field):
    with pytest.raises(PhototoxError, match=field) as caught:
        MapSettings.from_params(params)
    assert "\n" not in str(caught.value)


def test_java_forwards_every_request_option():
    java = (REPO / "plugins" / "fiji" / "phototox_fiji" / "java" / "phototox" / "Options.java").read_text()
    forwarded = set(
        re.search(r"FORWARDED = \{([^}]*)\}", java)
        .group(1)
        .replace('"', "")
        .replace(" ", "")
        .replace("\n", "")
        .split(",")
    )
    request_options = set(option_names()) - {"colour"} | {"pixel_size", "model", "device"}
    assert request_options <= forwarded, f"Options.java does not forward {request_options - forwarded}"


def test_cellprofiler_defaults_follow_the_settings():
    pytest.importorskip("cellprofiler_core", reason="CellProfiler is not installed")
    from cellprofiler_core.preferences import set_headless

    set_headless()
    spec = importlib.util.spec_from_file_location(
        "measurephototoxicity_settings", REPO / "plugins" / "cellprofiler" / "measurephototoxicity.py"
    )
    plugin = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, plugin)
    spec.loader.exec_module(plugin)
    module = plugin.MeasurePhototoxicity()
    defaults = MapSettings()
    assert int(module.stride.value) == defaults.stride
    assert float(module.threshold.value) == defaults.threshold
    assert {c.split()[0].lower() for c in module.mode.choices} == set(
        MapSettings.__dataclass_fields__["mode"].metadata["choices"]
    )


# CLI option -> TrainConfig field, where the names differ
_TRAIN_FIELD = {"lr": "base_lr"}


def test_train_cli_defaults_are_the_train_configs():
    """TrainConfig is the one source of training defaults: every CLI option that sets a field has its default."""
    from phototox.training.augment import AugmentConfig
    from phototox.training.train import TrainConfig

    config, augment = TrainConfig(), AugmentConfig()
    options = {a.dest: a for a in _subparser("train")._actions}
    checked = 0
    for dest, action in options.items():
        name = _TRAIN_FIELD.get(dest, dest)
        if name in TrainConfig.__dataclass_fields__ and name not in ("augment", "init", "pixel_size_um"):
            assert action.default == getattr(config, name), f"--{dest.replace('_', '-')}"
            if isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
                assert f"default {action.default:g}" in (action.help or "") or "%(default)" in (action.help or ""), dest
            checked += 1
        elif dest.startswith("no_") and dest != "no_acquisition":
            field = {"no_tps": "tps_warp"}.get(dest, dest.removeprefix("no_"))
            assert getattr(augment, field) is True, f"--{dest} switches off an augmentation that is off by default"
            checked += 1
    assert checked >= 15
