"""Hostile command lines (issue 14): no output replaces an input, impossible outputs and bad
settings get one line and a non-zero exit before any work, nothing outside the outputs changes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch
from hostile_support import (
    SYNTH_MODEL,
    expect_refusal,
    run_main,
    skip_if_root,
    small_dataset,
    snapshot,
    write_field,
    write_manifest,
)

QUICK_TRAIN = ["--quiet", "--iterations", "1", "--batch-size", "2", "--val-fraction", "0", "--device", "cpu"]
"""Keeps a test short even when the guard it checks is broken and training starts."""

# --- no output may replace an input ----------------------------------------------------------


def test_map_refuses_to_overwrite_an_input_named_like_an_overlay(tmp_path, capsys):
    write_field(tmp_path / "x.png")
    write_field(tmp_path / "x_overlay.png", seed=2)
    expect_refusal(
        ["map", "x.png", "x_overlay.png", "--out", "."],
        tmp_path,
        capsys,
        names=("x_overlay.png",),
        problem="overwrite an input",
        cwd=tmp_path,
    )


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_map_refuses_an_output_that_is_a_link_to_an_input(tmp_path, capsys, link):
    write_field(tmp_path / "data" / "x.tif")
    other = tmp_path / "data" / "y.tif"
    write_field(other, seed=3)
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "x_map.tif"
    (os.symlink if link == "symlink" else os.link)(other, target)
    expect_refusal(
        ["map", tmp_path / "data" / "x.tif", other, "--out", tmp_path / "out"],
        tmp_path,
        capsys,
        names=("x_map.tif", "y.tif"),
        problem="overwrite an input",
    )


def test_evaluate_refuses_an_out_folder_whose_manifest_is_per_image_csv(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "per_image.csv", small_dataset(tmp_path))
    expect_refusal(
        ["evaluate", manifest, "--out", tmp_path, "--quiet"],
        tmp_path,
        capsys,
        names=(str(manifest),),
        problem="overwrite an input",
    )


def test_train_refuses_an_out_folder_whose_manifest_is_log_csv(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "log.csv", small_dataset(tmp_path))
    expect_refusal(
        ["train", manifest, "--out", tmp_path, *QUICK_TRAIN],
        tmp_path,
        capsys,
        names=(str(manifest),),
        problem="overwrite an input",
    )


def test_train_refuses_to_overwrite_its_init_weights(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "data" / "m.csv", small_dataset(tmp_path / "data"))
    from phototox.models.registry import load_registered
    from phototox.models.weights import save_weights

    shipped = load_registered()
    save_weights(tmp_path / "run" / "model.pt", shipped.module, shipped.arch, shipped.module.config())
    expect_refusal(
        ["train", manifest, "--out", tmp_path / "run", "--init", tmp_path / "run" / "model.pt", *QUICK_TRAIN],
        tmp_path,
        capsys,
        names=("model.pt",),
        problem="overwrite an input",
    )


def test_dose_response_refuses_a_manifest_named_like_its_report(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "dose_response.json", small_dataset(tmp_path))
    expect_refusal(
        ["dose-response", manifest, "--out", tmp_path, "--quiet"],
        tmp_path,
        capsys,
        names=("dose_response.json",),
        problem="overwrite an input",
    )


def test_predict_refuses_out_equal_to_an_image(tmp_path, capsys):
    write_field(tmp_path / "x.tif")
    expect_refusal(
        ["predict", tmp_path / "x.tif", "--out", tmp_path / "x.tif"],
        tmp_path,
        capsys,
        names=("x.tif",),
        problem="overwrite an input",
    )


def test_explain_refuses_a_reference_manifest_in_its_output_names(tmp_path, capsys):
    rows = small_dataset(tmp_path)
    reference = write_manifest(tmp_path / "f0_gradcam.png", rows)
    expect_refusal(
        ["explain", tmp_path / "f0.tif", "--out", tmp_path, "--reference", reference],
        tmp_path,
        capsys,
        names=("f0_gradcam.png",),
        problem="overwrite an input",
    )


def test_class_model_refuses_to_overwrite_its_init_image(tmp_path, capsys):
    write_field(tmp_path / "class_model_sick.png")
    expect_refusal(
        ["class-model", "--out", tmp_path, "--init-image", tmp_path / "class_model_sick.png"],
        tmp_path,
        capsys,
        names=("class_model_sick.png",),
        problem="overwrite an input",
    )


def test_demo_refuses_a_model_file_among_its_outputs(tmp_path, capsys):
    from phototox.models.registry import shipped_dir as shipped_models_dir

    model = tmp_path / "out" / "summary.csv"
    model.parent.mkdir()
    model.write_bytes((shipped_models_dir() / "deadnet-gap-synthetic-v2.pt").read_bytes())
    expect_refusal(
        ["demo", "--out", tmp_path / "out", "--model", model],
        tmp_path,
        capsys,
        names=("summary.csv",),
        problem="overwrite an input",
    )


# --- impossible output places ----------------------------------------------------------------

IMPOSSIBLE = {
    "under a file": lambda tmp: tmp / "x.tif" / "sub",
    "/proc": lambda tmp: Path("/proc/phototox-test"),
    "/sys": lambda tmp: Path("/sys/phototox-test"),
}


@pytest.mark.parametrize("where", sorted(IMPOSSIBLE))
@pytest.mark.parametrize("command", ["map", "predict", "evaluate", "train", "dose-response", "synth", "explain"])
def test_impossible_out_is_one_line(tmp_path, capsys, where, command):
    if where != "under a file" and not Path(where).is_dir():
        pytest.skip(f"no {where} here")
    rows = small_dataset(tmp_path)
    write_field(tmp_path / "x.tif")
    manifest = write_manifest(tmp_path / "m.csv", rows)
    out = IMPOSSIBLE[where](tmp_path)
    args = {
        "map": ["map", tmp_path / "x.tif", "--out", out],
        "predict": ["predict", tmp_path / "x.tif", "--out", out / "r.csv"],
        "evaluate": ["evaluate", manifest, "--out", out],
        "train": ["train", manifest, "--out", out, *QUICK_TRAIN],
        "dose-response": ["dose-response", manifest, "--out", out],
        "synth": ["synth", "--out", out],
        "explain": ["explain", tmp_path / "x.tif", "--out", out],
    }[command]
    expect_refusal(args, tmp_path, capsys, names=(str(out),), problem="cannot write here")


@skip_if_root
def test_read_only_out_folder_is_one_line(tmp_path, capsys):
    write_field(tmp_path / "x.tif")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        expect_refusal(
            ["map", tmp_path / "x.tif", "--out", locked / "maps"],
            tmp_path,
            capsys,
            names=("locked",),
            problem="cannot write here",
        )
    finally:
        locked.chmod(0o755)


def test_oserror_while_writing_is_one_line(tmp_path, capsys, monkeypatch):
    """Disk full (or any OSError) met after the checks: one line naming the path, exit 1."""
    import phototox.results.outputs

    def disk_full(path, rows):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(phototox.results.outputs, "write_summary", disk_full)
    write_field(tmp_path / "x.tif")
    code, _, err = run_main(
        [
            "predict",
            tmp_path / "x.tif",
            "--out",
            tmp_path / "r.csv",
            "--mode",
            "exact",
            "--stride",
            "64",
            "--model",
            SYNTH_MODEL,
            "--quiet",
        ],
        capsys,
    )
    assert code == 1
    errors = [line for line in err.strip().splitlines() if not line.startswith("phototox: warning: ")]
    assert errors == [f"phototox: error: {tmp_path / 'r.csv'}: No space left on device"]


# --- inputs that collide ---------------------------------------------------------------------


def test_same_image_twice_is_refused(tmp_path, capsys):
    write_field(tmp_path / "x.tif")
    os.symlink(tmp_path / "x.tif", tmp_path / "link.tif")
    for command in ("map", "predict"):
        out = ["--out", tmp_path / "o"] if command == "map" else []
        expect_refusal(
            [command, tmp_path / "x.tif", tmp_path / "x.tif", *out],
            tmp_path,
            capsys,
            names=("x.tif",),
            problem="given twice",
        )
        expect_refusal(
            [command, tmp_path / "x.tif", tmp_path / "link.tif", *out],
            tmp_path,
            capsys,
            names=("link.tif", "x.tif"),
            problem="same file",
        )


def test_same_name_in_two_folders_is_disambiguated(tmp_path, capsys):
    write_field(tmp_path / "a" / "x.tif", dose=0.0, seed=4)
    write_field(tmp_path / "b" / "x.tif", dose=1.0, seed=5)
    code, _, err = run_main(
        [
            "map",
            tmp_path / "a" / "x.tif",
            tmp_path / "b" / "x.tif",
            "--out",
            tmp_path / "o",
            "--model",
            SYNTH_MODEL,
            "--mode",
            "exact",
            "--stride",
            "64",
            "--quiet",
            "--no-overlay",
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a_x_map.tif", "b_x_map.tif", "summary.csv"]


def test_same_name_in_two_same_named_folders_is_refused(tmp_path, capsys):
    write_field(tmp_path / "a" / "s" / "x.tif")
    write_field(tmp_path / "b" / "s" / "x.tif", seed=2)
    expect_refusal(
        ["map", tmp_path / "a" / "s" / "x.tif", tmp_path / "b" / "s" / "x.tif", "--out", tmp_path / "o"],
        tmp_path,
        capsys,
        names=(str(tmp_path / "a" / "s" / "x.tif"), str(tmp_path / "b" / "s" / "x.tif")),
        problem="same names",
    )


# --- settings validated in one place ----------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--batch-size", "0", "batch_size"),
        ("--val-fraction", "1.5", "val_fraction"),
        ("--workers", "-1", "workers"),
        ("--eval-every", "0", "eval_every"),
        ("--iterations", "0", "iterations"),
        ("--checkpoint-every", "0", "checkpoint_every"),
        ("--lr", "0", "base_lr"),
        ("--lr", "nan", "base_lr"),
    ],
)
def test_train_settings_are_validated(tmp_path, capsys, option, value, field):
    manifest = write_manifest(tmp_path / "m.csv", small_dataset(tmp_path))
    expect_refusal(
        ["train", manifest, "--out", tmp_path / "run", *QUICK_TRAIN, option, value],
        tmp_path,
        capsys,
        names=(field, option),
        problem="must",
    )


def test_train_config_validate_is_the_library_check():
    from phototox.errors import PhototoxError
    from phototox.training.train import TrainConfig

    TrainConfig().validate()
    with pytest.raises(PhototoxError, match="iterations"):
        TrainConfig(iterations=0).validate()


@pytest.mark.parametrize("batch", ["-1", "0"])
def test_exact_mode_batch_size_is_validated(tmp_path, capsys, batch):
    write_field(tmp_path / "x.tif")
    expect_refusal(
        ["predict", tmp_path / "x.tif", "--mode", "exact", "--batch-size", batch],
        tmp_path,
        capsys,
        names=("--batch-size", batch),
        problem="must be",
    )


# --- run folders and manifests ----------------------------------------------------------------


def _checkpoint(kind: str, path: Path) -> None:
    if kind == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "foreign dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "wrong shapes":
        torch.save(
            {
                "model": {"features.0.weight": torch.zeros(1)},
                "optimizer": {},
                "iteration": 1,
                "epoch": 0,
                "batch_in_epoch": 1,
                "history": [],
                "config": {},
            },
            path,
        )


@pytest.mark.parametrize("kind", ["garbage", "text", "foreign dict", "wrong shapes"])
def test_corrupt_or_foreign_checkpoint_is_one_line(tmp_path, capsys, kind):
    manifest = write_manifest(tmp_path / "m.csv", small_dataset(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    _checkpoint(kind, run / "checkpoint.pt")
    args = ["train", manifest, "--out", run, *QUICK_TRAIN]
    if kind == "wrong shapes":  # matching config so that loading the state is what fails
        from phototox.training.augment import AugmentConfig
        from phototox.training.train import TrainConfig

        config = TrainConfig(
            iterations=1, batch_size=2, val_fraction=0.0, device="cpu", augment=AugmentConfig()
        ).to_dict()
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        state["config"] = config
        torch.save(state, run / "checkpoint.pt")
    expect_refusal(
        args,
        tmp_path,
        capsys,
        names=(str(run / "checkpoint.pt"), "--restart"),
        problem="not a usable phototox training checkpoint",
    )


@pytest.mark.parametrize("dose", ["nan", "inf", "-inf"])
def test_dose_response_refuses_non_finite_doses(tmp_path, capsys, dose):
    rows = small_dataset(tmp_path)
    rows[2][3] = dose
    manifest = write_manifest(tmp_path / "m.csv", rows)
    expect_refusal(
        ["dose-response", manifest, "--out", tmp_path / "o"],
        tmp_path,
        capsys,
        names=(str(manifest), "line 4", dose),
        problem="not a finite number",
    )


@pytest.mark.parametrize("spelling", ["same", "dot", "symlink"])
def test_duplicate_manifest_rows_are_refused_with_their_lines(tmp_path, capsys, spelling):
    rows = small_dataset(tmp_path)
    if spelling == "symlink":
        os.symlink(tmp_path / "f1.tif", tmp_path / "alias.tif")
    duplicate = {"same": "f1.tif", "dot": "./f1.tif", "symlink": "alias.tif"}[spelling]
    manifest = write_manifest(tmp_path / "m.csv", [*rows, [duplicate, "healthy", "g9", 0.1]])
    for command in (
        ["evaluate", manifest],
        ["train", manifest, "--out", tmp_path / "run", *QUICK_TRAIN],
        ["dose-response", manifest, "--out", tmp_path / "o"],
    ):
        expect_refusal(command, tmp_path, capsys, names=(str(manifest), "lines 3 and 6"), problem="listed twice")


def test_frame_windows_of_one_stack_are_not_duplicates(tmp_path):
    from phototox.io.manifest import read_manifest

    write_field(tmp_path / "f.tif")
    manifest = write_manifest(
        tmp_path / "m.csv",
        [["f.tif", "healthy", "g", "0-0"], ["f.tif", "sick", "g", "1-2"]],
        header=("path", "label", "group", "frames"),
    )
    assert len(read_manifest(manifest)) == 2


# --- unreadable images ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.png", b""),
        ("text.png", b"hello, not an image\n"),
        ("text.tif", b"hello"),
        ("cut.png", b"\x89PNG\r\n\x1a\n\x00\x00"),
    ],
)
def test_unreadable_image_is_one_line(tmp_path, capsys, name, content):
    (tmp_path / name).write_bytes(content)
    line = expect_refusal(["predict", tmp_path / name], tmp_path, capsys, names=(name,), problem="not a readable")
    assert "pip" not in line


def test_snapshot_sees_changes(tmp_path):
    """The tree check itself can fail: a rewritten file (same size) and a new file both show."""
    (tmp_path / "a").write_text("1")
    before = snapshot(tmp_path)
    os.utime(tmp_path / "a", ns=(1, 1))
    assert snapshot(tmp_path) != before
    (tmp_path / "b").write_text("")
    assert "b" in snapshot(tmp_path)
