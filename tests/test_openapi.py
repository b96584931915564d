"""docs/openapi.yaml describes the running `phototox serve`: paths, methods, bodies, query keys, result keys."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
import yaml
from conftest import REPO

from phototox.apps.serve import BODY_TYPES, make_server
from phototox.io.images import BODY_KINDS
from phototox.maps.settings import option_names
from phototox.results.analysis_requests import RESULT_KEYS

SPEC = yaml.safe_load((REPO / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "delete", "patch")


@pytest.fixture(scope="module")
def url(tiny_model_path):
    server, _ = make_server("127.0.0.1", 0, str(tiny_model_path), "cpu", None, 1_000_000)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _call(
    url: str, method: str, path: str, body: bytes | None = None, content_type: str = ""
) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"{url}{path}", data=body, method=method.upper())
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _png(frame: np.ndarray) -> bytes:
    import imageio.v3 as iio

    buffer = io.BytesIO()
    iio.imwrite(buffer, frame, extension=".png")
    return buffer.getvalue()


def test_spec_lists_what_the_server_reads():
    post = SPEC["paths"]["/v1/analyse"]["post"]
    assert set(post["requestBody"]["content"]) == set(BODY_KINDS) | (set(BODY_TYPES) - {""})
    keys = {p["name"] for p in post["parameters"]}
    assert keys == {"width", "height", "pixel_size", "model", "device", *option_names()}
    assert post["responses"]["200"]["headers"]["X-Phototox-Result"]["x-keys"] == list(RESULT_KEYS)


def test_every_documented_route_answers_and_nothing_else(url):
    frame = np.random.default_rng(3).integers(0, 255, (240, 250), dtype=np.uint8)
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            status, headers, body = (
                _call(url, method, path, _png(frame), "image/png") if method == "post" else _call(url, method, path)
            )
            if method not in item:
                assert status in (404, 501), f"{method.upper()} {path} answered {status}, not in docs/openapi.yaml"
                continue
            assert str(status) in item[method]["responses"], f"{method.upper()} {path}: {status} undocumented"
            assert status == 200, body[:200]
            if path == "/v1/status":
                schema = item[method]["responses"]["200"]["content"]["application/json"]["schema"]
                assert set(json.loads(body)) == set(schema["required"]) == set(schema["properties"])
            else:
                keys = [kv.split("=")[0] for kv in headers["X-Phototox-Result"].split(";")]
                documented = item[method]["responses"]["200"]["headers"]
                assert keys == documented["X-Phototox-Result"]["x-keys"]
                assert set(documented) <= set(headers)
                assert len(body) == 4 * frame.size
    assert _call(url, "get", "/v1/nothing")[0] == 404


def test_png_without_its_media_type_is_refused_in_one_line_naming_the_bodies(url):
    """curl --data-binary @field.png without -H sends form data: refused, saying which bodies are taken."""
    png = _png(np.zeros((240, 250), np.uint8))
    status, _, body = _call(url, "post", "/v1/analyse", png, "application/x-www-form-urlencoded")
    assert status == 415
    line = body.decode()
    assert "\n" not in line.strip() and "image/png" in line and "image/tiff" in line and "float32" in line
    status, _, body = _call(url, "post", "/v1/analyse", png, "application/octet-stream")
    assert status == 400 and "Content-Type: image/png" in body.decode()
