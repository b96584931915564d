"""Training recipe, determinism, resume, and a tiny end-to-end train -> evaluate -> predict run."""

import itertools
import json

import numpy as np
import pytest
import torch

from phototox.apps.cli import main
from phototox.io.manifest import read_manifest
from phototox.models.architectures import build_model
from phototox.models.weights import load_weights
from phototox.training.augment import AugmentConfig
from phototox.training.train import TrainConfig, Trainer, inv_lr, parameter_groups


def test_inv_schedule_is_caffes():
    assert inv_lr(3e-4, 0) == 3e-4
    assert inv_lr(3e-4, 100_000) == pytest.approx(3e-4 * 2.0**-0.75)
    values = [inv_lr(3e-4, i) for i in range(0, 50_000, 5000)]
    assert all(a > b for a, b in itertools.pairwise(values))


def test_conv_biases_have_no_weight_decay():
    model = build_model("deadnet")
    decay, no_decay = parameter_groups(model, 1e-4)
    conv_biases = {id(m.bias) for m in model.modules() if isinstance(m, torch.nn.Conv2d)}
    assert {id(p) for p in no_decay["params"]} == conv_biases
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def _config(**kw):
    base = dict(
        iterations=4,
        batch_size=4,
        eval_every=2,
        checkpoint_every=2,
        val_fraction=0.25,
        device="cpu",
        augment=AugmentConfig(tps_warp=True),
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_training_is_deterministic_and_resume_matches(tmp_path, synth_dataset):
    samples = read_manifest(synth_dataset)
    straight = Trainer(samples, tmp_path / "a", _config(), progress=False)
    straight.run()
    first = Trainer(samples, tmp_path / "b", _config(iterations=2), progress=False)
    first.run()
    resumed = Trainer(samples, tmp_path / "b", _config(iterations=4), progress=False)
    assert resumed.resume() and resumed.iteration == 2
    resumed.run()
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), k
    with pytest.raises(Exception, match="another configuration"):
        Trainer(samples, tmp_path / "b", _config(base_lr=1.0), progress=False).resume()


@pytest.mark.slow
def test_end_to_end_train_evaluate_predict(tmp_path, synth_dataset, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(synth_dataset),
                "--out",
                str(run),
                "--iterations",
                "4",
                "--batch-size",
                "4",
                "--eval-every",
                "2",
                "--checkpoint-every",
                "2",
                "--val-fraction",
                "0.25",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    for name in ("model.pt", "model.pt.sha256", "config.json", "log.csv", "curves.png", "checkpoint.pt"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert not set(config["train_groups"]) & set(config["val_groups"])
    model = load_weights(run / "model.pt")
    assert model.meta["trained_iterations"] == 4

    assert (
        main(
            [
                "evaluate",
                str(synth_dataset),
                "--model",
                str(run / "model.pt"),
                "--out",
                str(tmp_path / "ev"),
                "--device",
                "cpu",
                "--held-out",
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["n_images"] == len(config["val_groups"])
    assert 0 <= metrics["crop_accuracy"] <= 1 and sum(map(sum, metrics["confusion_crops"])) == metrics["n_crops"]
    assert (tmp_path / "ev" / "roc.png").is_file() and (tmp_path / "ev" / "per_image.csv").is_file()

    image = read_manifest(synth_dataset)[0].path
    capsys.readouterr()
    assert main(["predict", str(image), "--model", str(run / "model.pt"), "--device", "cpu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and 0 <= rows[0]["mean_sick_probability"] <= 1
    assert rows[0]["label"] in ("healthy", "sick")


def test_fine_tuning_starts_from_given_weights(tmp_path, synth_dataset, tiny_model_path):
    samples = read_manifest(synth_dataset)
    trainer = Trainer(samples, tmp_path / "ft", _config(init=str(tiny_model_path)), progress=False)
    start = load_weights(tiny_model_path).module.state_dict()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v.cpu(), start[k]), k
    with pytest.raises(Exception, match="--arch"):
        Trainer(samples, tmp_path / "ft2", _config(init=str(tiny_model_path), arch="deadnet"), progress=False)


def test_tampered_weights_are_refused(tmp_path, tiny_model_path):
    copy = tmp_path / "m.pt"
    data = bytearray(tiny_model_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    (tmp_path / "m.pt.sha256").write_text((tiny_model_path.parent / "model.pt.sha256").read_text())
    with pytest.raises(Exception, match="checksum mismatch"):
        load_weights(copy)


def test_weights_file_with_code_is_not_executed(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, ("open({!r}, 'w').write('pwned')".format(str(tmp_path / "pwned")),))

    path = tmp_path / "evil.pt"
    torch.save({"format": "phototox-weights", "x": Evil()}, path, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    with pytest.raises(Exception, match="not a safe phototox model file"):
        load_weights(path)
    assert not (tmp_path / "pwned").exists()


def test_evaluation_counts(tmp_path, synth_dataset, tiny_model_path):
    from phototox.maps.inference import Predictor
    from phototox.training.evaluate import evaluate_samples

    predictor = Predictor.create(load_weights(tiny_model_path), "cpu")
    ev = evaluate_samples(predictor, read_manifest(synth_dataset))
    m = ev.metrics
    assert m["n_images"] == 8 and m["n_crops"] == 8  # one 256 crop per 256x256 image
    assert set(m["per_replicate"]) == {"synthetic1", "synthetic2"}
    assert np.all((ev.probs >= 0) & (ev.probs <= 1))
