"""`phototox serve`: the HTTP API used by ImageJ and other programs."""

import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from phototox.apps.serve import is_loopback, make_server
from phototox.maps.settings import MapSettings
from phototox.results.analysis_requests import parse_imagej_options


@pytest.fixture()
def running(tiny_model_path):
    servers = []

    def start(host="127.0.0.1", token=None, max_pixels=10_000_000):
        server, token = make_server(host, 0, str(tiny_model_path), "cpu", token, max_pixels)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", token

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _post(url, pixels, width, height, token=None, **params):
    query = "&".join(f"{k}={v}" for k, v in {"width": width, "height": height, **params}.items())
    request = urllib.request.Request(
        f"{url}/v1/analyse?{query}",
        data=pixels.astype("<f4").tobytes(),
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(request, timeout=60)


def test_analyse_returns_map_and_numbers(running, tiny_model_path):
    from phototox.maps.inference import Predictor
    from phototox.models.weights import load_weights

    url, _ = running()
    frame = np.random.default_rng(0).normal(100, 10, (240, 260)).astype(np.float32)
    with _post(url, frame, 260, 240, stride=16, mode="exact") as response:
        values = dict(kv.split("=") for kv in response.headers["X-Phototox-Result"].split(";"))
        sick_map = np.frombuffer(response.read(), "<f4").reshape(240, 260)
    expected = Predictor.create(load_weights(tiny_model_path), "cpu").analyse_frame(
        frame, MapSettings(stride=16, mode="exact")
    )
    assert float(values["mean_sick_probability"]) == pytest.approx(expected.mean_sick_probability, abs=1e-5)
    assert np.allclose(sick_map, expected.sick_map, atol=1e-6)
    with urllib.request.urlopen(f"{url}/v1/status") as response:
        assert json.loads(response.read())["model"] == str(tiny_model_path)


def test_bad_requests_get_clear_answers(running):
    url, _ = running(max_pixels=100_000)
    frame = np.zeros((240, 260), np.float32)
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, frame[:, :100], 260, 240)
    assert err.value.code == 400 and "expected" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, np.zeros((400, 400), np.float32), 400, 400)
    assert err.value.code == 413 and "limit" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, np.zeros((100, 100), np.float32), 100, 100)
    assert err.value.code == 400 and "smaller than the 220x220" in err.value.read().decode()
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, frame, 260, 240, stride="x")
    assert err.value.code == 400 and "stride" in err.value.read().decode()
    nan = frame.copy()
    nan[0, 0] = np.nan
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, nan, 260, 240)
    assert "NaN" in err.value.read().decode()


def test_a_request_right_after_an_answer_finds_the_pixels_given_back(running, monkeypatch):
    """The pixel budget is released before the answer goes out: back-to-back requests that each
    take most of the budget never get a spurious 503, however slowly the handler thread goes on."""
    import time

    from phototox.apps import serve

    give = serve.PixelBudget.give

    def slow_give(self, pixels):
        time.sleep(0.3)  # the handler thread is descheduled after answering (a loaded machine)
        give(self, pixels)

    monkeypatch.setattr(serve.PixelBudget, "give", slow_give)
    url, _ = running(max_pixels=100_000)
    frame = np.random.default_rng(0).random((240, 260)).astype(np.float32)  # 62,400 of 100,000 pixels
    for stride in ("x", "16", "16"):  # a refused parameter and two analyses, each answered then reused
        try:
            _post(url, frame, 260, 240, stride=stride).read()
        except urllib.error.HTTPError as err:
            assert err.code == 400 and stride == "x", err.read().decode()


def test_token_required_off_loopback(running):
    url, token = running(host="0.0.0.0")
    assert token and len(token) > 20
    frame = np.zeros((230, 230), np.float32)
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, frame, 230, 230)
    assert err.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, frame, 230, 230, token="forged")
    assert err.value.code == 401
    with _post(url, frame, 230, 230, token=token) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        _post(url, frame, 230, 230, token=token, model="/etc/passwd.pt")
    assert err.value.code == 403


def test_helpers():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert parse_imagej_options("stride=32 model=[a b.pt] stack mode=dense") == {
        "stride": "32",
        "model": "a b.pt",
        "stack": "",
        "mode": "dense",
    }
