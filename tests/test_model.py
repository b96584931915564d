"""DeadNet architecture: shapes, Caffe ceil-mode pooling, parameter counts, dense head."""

import pytest
import torch

from phototox.models.architectures import (
    ARCHITECTURES,
    DEFAULT_ARCH,
    build_model,
    count_parameters,
)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_220_in_two_out(arch):
    model = build_model(arch).eval()
    out = model(torch.randn(3, 1, 220, 220))
    assert out.shape == (3, 2)


def test_trunk_sizes_follow_caffe_ceil_rounding():
    model = build_model("deadnet").eval()
    sizes = {}
    x = torch.randn(1, 1, 220, 220)
    for name, layer in model.features.named_children():
        x = layer(x)
        sizes[name] = x.shape[-1]
    assert sizes["conv1_1"] == 212
    assert (sizes["pool1"], sizes["pool2"]) == (106, 53)
    assert sizes["pool3"] == 27  # floor rounding would give 26
    assert sizes["conv4_2"] == 27 and sizes["pool4"] == 14
    assert model.fc1.in_features == 128 * 14 * 14 == 25088


def test_parameter_counts():
    full = count_parameters(build_model("deadnet"))
    compact = count_parameters(build_model("deadnet-gap"))
    assert 13.3e6 < full < 13.5e6
    assert compact < full / 40
    assert DEFAULT_ARCH == "deadnet-gap"


def test_xavier_init_and_zero_biases():
    model = build_model("deadnet")
    assert torch.all(model.features.conv1_1.bias == 0)
    bound = (3.0 / 81) ** 0.5
    w = model.features.conv1_1.weight
    assert w.abs().max() <= bound and w.std() > bound / 3


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_dense_head_equals_head_on_one_window(arch):
    torch.manual_seed(0)
    model = build_model(arch).eval()
    for module in model.modules():  # non-trivial batch-norm statistics
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 1, 220, 220)
    with torch.no_grad():
        feat = model.features(x)
        assert torch.allclose(model.dense_head(feat)[:, :, 0, 0], model.head(feat), atol=1e-4)


def test_dense_head_stride_is_16():
    model = build_model("deadnet-gap").eval()
    with torch.no_grad():
        grid = model.dense_head(model.features(torch.randn(1, 1, 220 + 16 * 3, 220 + 16 * 5)))
    assert grid.shape[-2:] == (4, 6)


def test_softmax_output_option_keeps_weights():
    a = build_model("deadnet-gap").eval()
    b = build_model("deadnet-gap", softmax_output=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 220, 220)
    with torch.no_grad():
        assert torch.allclose(torch.softmax(a(x), 1), b(x), atol=1e-6)


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet")


def test_interior_pooling_makes_dense_exact_without_normalisation_effects():
    """With border 3 the pooled cells never see the crop's zero padding: dense == crops."""
    torch.manual_seed(1)
    model = build_model("deadnet-gap").eval()
    assert model.border == 3
    image = torch.randn(1, 1, 220 + 16 * 3, 220 + 16 * 2)
    with torch.no_grad():
        dense = model.dense_head(model.features(image))[0]
        for i in range(4):
            for j in range(3):
                crop = image[:, :, 16 * i : 16 * i + 220, 16 * j : 16 * j + 220]
                assert torch.allclose(model(crop)[0], dense[:, i, j], atol=1e-4)
    with pytest.raises(ValueError):
        build_model("deadnet-gap", border=7)
