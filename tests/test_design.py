"""``phototox design``: each missing design item is one line saying what it costs; both table formats."""

from __future__ import annotations

import pytest

from phototox.apps.cli import main
from phototox.experiment.design import check_design, design_lines, read_design

TIMECOURSE_HEADER = (
    "field,irradiance_mW_per_cm2,exposure_ms,wavelength_nm,frames,replicate,dish,positive_control,power_meter"
)


def _timecourse(tmp_path, rows: list[str], header: str = TIMECOURSE_HEADER):
    path = tmp_path / "doses.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _complete_rows() -> list[str]:
    rows = []
    for rep in ("d1", "d2", "d3"):
        rows += [f"c{rep}{k},0,50,488,10,{rep},{rep}-ctrl,," for k in range(2)]  # 6 control positions
        for k, irradiance in enumerate((100, 200, 400)):
            positive = "yes" if irradiance == 400 else ""
            rows.append(f"e{rep}{k},{irradiance},50,488,10,{rep},{rep}-light,{positive},yes")
    return rows


def test_a_complete_design_passes_every_check(tmp_path):
    checks = check_design(read_design(_timecourse(tmp_path, _complete_rows())))
    assert [c.item for c in checks] == [
        "controls",
        "doses",
        "replicates",
        "positive control",
        "follow-up",
        "irradiance",
        "control positions",
    ]
    assert all(c.ok for c in checks), [c.line for c in checks if not c.ok]


@pytest.mark.parametrize(
    ("change", "item", "words"),
    [
        (lambda r: [x for x in r if not x.startswith("c")], "controls", "no zero-light controls"),
        (lambda r: [x.replace("-ctrl", "-light") for x in r], "controls", "share dish"),
        (lambda r: [x for x in r if ",200," not in x and ",100," not in x], "doses", "fewer than 3"),
        (lambda r: [x for x in r if ",d3," not in x], "replicates", "not the biology"),
        (lambda r: [x.replace(",yes,yes", ",,yes") for x in r], "positive control", "sensitivity is unknown"),
        (lambda r: [x[: -len("yes")] + "no" if x.endswith(",yes") else x for x in r], "irradiance", "power meter"),
    ],
)
def test_each_missing_item_is_one_line_with_its_cost(tmp_path, change, item, words):
    checks = {c.item: c for c in check_design(read_design(_timecourse(tmp_path, change(_complete_rows()))))}
    assert not checks[item].ok and words in checks[item].line
    # removing control rows (or a dish's) also leaves fewer control positions: that check is tested below
    others = [c.line for name, c in checks.items() if not c.ok and name != "control positions"]
    assert len(others) == 1, others


def test_too_few_control_positions_say_how_far_an_onset_must_lie(tmp_path):
    """3 control positions: an onset must lie tens of spreads beyond them; more positions shrink that."""
    spreads = []
    for per_dish in (1, 2, 4):
        rows = [r for r in _complete_rows() if not r.startswith("c")]
        rows += [f"c{rep}{k},0,50,488,10,{rep},{rep}-ctrl,," for rep in ("d1", "d2", "d3") for k in range(per_dish)]
        checks = {c.item: c for c in check_design(read_design(_timecourse(tmp_path, rows)))}
        check = checks["control positions"]
        assert check.ok == (3 * per_dish >= 6), check.line
        spreads.append(float(check.line.split("must lie ")[1].split(" times")[0]))
    assert "cannot be shown" in check_design(read_design(_timecourse(tmp_path, _complete_rows()[1:])))[-1].line
    assert spreads[0] > 20 and spreads[0] > spreads[1] > spreads[2]


def test_follow_up_missing_without_frames_or_follow_up_column(tmp_path):
    header = TIMECOURSE_HEADER.replace(",frames", "")
    rows = [",".join(x.split(",")[:4] + x.split(",")[5:]) for x in _complete_rows()]
    checks = {c.item: c for c in check_design(read_design(_timecourse(tmp_path, rows, header)))}
    assert not checks["follow-up"].ok and "recording ended" in checks["follow-up"].line
    assert checks["doses"].ok and checks["controls"].ok  # without frames, exposed rows are still exposed


def test_a_dose_response_manifest_is_read_too(tmp_path):
    path = tmp_path / "manifest.csv"
    lines = ["path,dose,replicate,time"] + [f"img{d}_{r}.tif,{d},{r},24h" for d in (0, 1, 2, 4) for r in "abc"]
    path.write_text("\n".join(lines) + "\n")
    checks = {c.item: c for c in check_design(read_design(path))}
    assert checks["doses"].ok and checks["replicates"].ok and checks["follow-up"].ok
    assert not checks["positive control"].ok and not checks["irradiance"].ok


def test_cli_prints_one_line_per_check_and_refuses_bad_input_in_one_line(tmp_path, capsys):
    path = _timecourse(tmp_path, _complete_rows()[:2])
    assert main(["design", str(path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 7 and all(line.startswith(("ok: ", "missing: ")) for line in out)
    assert design_lines(path, missing_only=True) == [line for line in out if line.startswith("missing")]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["design", str(bad)]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.csv" in err
