"""Manifest reading, mass labelling by dose, and the grouped split."""

import numpy as np
import pytest

from phototox.errors import ManifestError
from phototox.io.manifest import Sample, grouped_split, parse_frames, read_manifest, write_manifest


def _write(tmp_path, text, files=("a.tif", "b.tif")):
    for f in files:
        (tmp_path / f).write_bytes(b"")
    path = tmp_path / "m.csv"
    path.write_text(text)
    return path


def test_reads_labels_groups_and_optional_columns(tmp_path):
    m = _write(tmp_path, "path,label,field,dose,replicate,frames\na.tif,healthy,f1,0,N1,\nb.tif,SICK,f2,2.5,N2,3-7\n")
    a, b = read_manifest(m)
    assert (a.label, a.group, a.dose, a.replicate, a.frames) == (0, "f1", 0.0, "N1", None)
    assert (b.label, b.group, b.frames) == (1, "f2", (3, 7))
    assert a.path == tmp_path / "a.tif"


def test_unknown_label_names_the_line(tmp_path):
    m = _write(tmp_path, "path,label\na.tif,healthy\nb.tif,dying\n")
    with pytest.raises(ManifestError, match=r"line 3: unknown label 'dying'"):
        read_manifest(m)


def test_missing_image_files_are_listed(tmp_path):
    m = _write(tmp_path, "path,label\na.tif,healthy\nmissing.tif,sick\n")
    with pytest.raises(ManifestError, match="missing.tif"):
        read_manifest(m)


def test_missing_columns_and_files(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "nope.csv")
    m = _write(tmp_path, "file,label\na.tif,healthy\n")
    with pytest.raises(ManifestError, match="'path' column"):
        read_manifest(m)


def test_mass_labelling_by_dose(tmp_path):
    m = _write(tmp_path, "path,dose\na.tif,0.1\nb.tif,5\n")
    with pytest.raises(ManifestError, match="label"):
        read_manifest(m)
    a, b = read_manifest(m, dose_threshold=1.0)
    assert (a.label, b.label) == (0, 1)


def test_parse_frames():
    assert parse_frames("", "x") is None
    assert parse_frames("4", "x") == (4, 4)
    assert parse_frames("2:9", "x") == (2, 9)
    with pytest.raises(ManifestError):
        parse_frames("9-2", "x")


def test_manifest_round_trip(tmp_path):
    m = _write(tmp_path, "path,label,group,dose\na.tif,healthy,g1,0\nb.tif,sick,g2,1\n")
    samples = read_manifest(m)
    out = tmp_path / "copy.csv"
    write_manifest(out, samples)
    again = read_manifest(out)
    assert [(s.path, s.label, s.group, s.dose) for s in again] == [(s.path, s.label, s.group, s.dose) for s in samples]


@pytest.mark.parametrize("seed", range(5))
def test_grouped_split_never_shares_a_group_and_keeps_both_classes(seed):
    rng = np.random.default_rng(seed)
    samples = [Sample(path=f"{i}.tif", label=int(g % 2), group=f"g{g}") for i, g in enumerate(rng.integers(0, 12, 80))]
    train, test = grouped_split(samples, 0.3, seed)
    assert sorted(train + test) == list(range(len(samples)))
    assert not {samples[i].group for i in train} & {samples[i].group for i in test}
    assert {samples[i].label for i in test} == {0, 1} and {samples[i].label for i in train} == {0, 1}
    assert grouped_split(samples, 0.3, seed) == (train, test)
