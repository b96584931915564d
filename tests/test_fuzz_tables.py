"""Property fuzz of the table parsers (issue 23): manifests, doses, plate layouts, run ledgers.

Whatever the bytes, a parser gives a result or a :class:`PhototoxError` whose message is one line,
never another exception, and writes nothing. Deterministic (``derandomize=True``) and bounded
(``max_examples``) so that CI runs the same cases in well under a minute.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phototox.errors import PhototoxError

FUZZ = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

COLUMNS = [
    "path",
    "label",
    "group",
    "dose",
    "frames",
    "replicate",
    "time",
    "well",
    "plate",
    "row",
    "column",
    "field",
    "irradiance_mW_per_cm2",
    "exposure_ms",
    "wavelength_nm",
    " Path ",
    "",
]
CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "a.tif",
            "../a.tif",
            "/etc/passwd",
            "sick",
            "healthy",
            "0",
            "1",
            "-1",
            "3-12",
            "5-2",
            "1e308",
            "1e999",
            "nan",
            "inf",
            "-0",
            "B03",
            "b3",
            "AF48",
            "Z99",
            "99999999999999999999",
            "a",
            "b",
            "x y",
            "../../../escaped",
            '"quoted, comma"',
            "line\nbreak",
            "\x00",
            "\u212b",
            "\ufeff",
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def csv_tables(draw, core: tuple[str, ...] = ()) -> bytes:
    """A CSV-like table: the parser's own columns (each mostly present), odd extra columns, rows of
    hostile cells, now and then a stray byte that is no UTF-8."""
    header = [c for c in core if draw(st.integers(0, 5))] + draw(st.lists(st.sampled_from(COLUMNS), max_size=3))
    header = draw(st.permutations(header))
    rows = draw(st.lists(st.lists(CELLS, max_size=len(header) + 1), max_size=6))
    sep = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(sep.join(cells) for cells in [header, *rows])
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = draw(st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"])) + data
    if draw(st.integers(0, 4)) == 0:  # now and then a stray byte that is no UTF-8
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80", b"\x00"])) + data[at:]
    return data


def tables(*core: str) -> st.SearchStrategy[bytes]:
    """Tables shaped for one parser (its ``core`` columns), and plain bytes."""
    return st.one_of(csv_tables(core), csv_tables(core), st.binary(max_size=200))


def _parses_or_refuses(name: str, data: bytes, parse: Callable[[Path], object]) -> None:
    """Write ``data`` to a fresh folder, parse it; a PhototoxError must be one line; nothing written."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        (Path(folder) / "a.tif").write_bytes(b"II*\x00")  # a file that tables may name
        try:
            parse(path)
        except PhototoxError as exc:
            rendered = " ".join(str(exc).split())  # what the CLI prints
            assert rendered and "\n" not in rendered
            assert "Traceback" not in str(exc)
        assert sorted(os.listdir(folder)) == sorted([name, "a.tif"])


@FUZZ
@given(
    data=tables("path", "label", "dose", "group", "frames"),
    labels=st.booleans(),
    threshold=st.sampled_from([None, 0.5]),
)
def test_manifest_parser(data, labels, threshold):
    from phototox.io.manifest import read_manifest

    _parses_or_refuses(
        "m.csv", data, lambda p: read_manifest(p, dose_threshold=threshold, require_labels=labels, check_files=True)
    )


@FUZZ
@given(data=tables("field", "irradiance_mW_per_cm2", "exposure_ms", "wavelength_nm", "frames"))
def test_doses_parser(data):
    from phototox.timecourse.io import read_doses

    _parses_or_refuses("doses.csv", data, lambda p: read_doses(p, ["a", "b"], {"a": 5, "b": 5}))


@FUZZ
@given(data=tables("path", "well", "plate", "time", "row", "column"), check=st.booleans())
def test_layout_parser(data, check):
    from phototox.screens.plates import plate_report_paths, read_layout

    def parse(path: Path) -> None:
        placements = read_layout(path, check_files=check)
        plate_report_paths(placements, path.parent / "out")  # names from the data stay names

    _parses_or_refuses("layout.csv", data, parse)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    '{"settings": {"model": "m"}}',
                    '{"key": "k", "rows": [{"a": 1}]}',
                    '{"key": 1, "rows": 2}',
                    '{"key": "k", "rows": [1]}',
                    "[]",
                    "null",
                    '"s"',
                    "{",
                    "[" * 5000,
                    "NaN",
                ]
            ),
            max_size=5,
        ).map(lambda lines: "\n".join(lines).encode()),
    )
)
def test_ledger_parser(data):
    from phototox.screens.ledger import Ledger

    def parse(path: Path) -> None:
        ledger = Ledger(path, {"model": "m"})
        assert all(isinstance(k, str) and isinstance(v, list) for k, v in ledger.done.items())

    _parses_or_refuses("l.jsonl", data, parse)


@FUZZ
@given(values=st.lists(st.text(max_size=80), max_size=8))
def test_names_from_data_are_safe_and_distinct(values):
    from phototox.io.planned import unique_names

    try:
        names = unique_names(values, "value")
    except PhototoxError as exc:
        assert "\n" not in str(exc)
        return
    assert len({n.lower() for n in names.values()}) == len(set(values))
    for name in names.values():
        assert name and not name.startswith(".") and os.sep not in name and "\x00" not in name


@pytest.mark.parametrize("parser", ["manifest", "doses", "layout"])
def test_known_hostile_tables(parser, tmp_path):
    """The reproductions the fuzz is built around, kept as plain cases."""
    from phototox.io.manifest import read_manifest
    from phototox.screens.plates import read_layout
    from phototox.timecourse.io import read_doses

    parse = {
        "manifest": read_manifest,
        "doses": lambda p: read_doses(p, ["a"], {"a": 3}),
        "layout": read_layout,
    }[parser]
    for data in (b"\xff\xfe\x00", b"path,well\n\x00,\x00\n", b'path\n"unterminated\n', b"\xef\xbb\xbf"):
        path = tmp_path / "t.csv"
        path.write_bytes(data)
        with pytest.raises(PhototoxError):
            parse(path)
