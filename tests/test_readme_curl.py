"""The README's curl example, run as written against a live `phototox serve` on 127.0.0.1.

Only the port (a free one instead of 8765) and the server's model (the tiny test model) differ.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")


def _readme_example() -> list[str]:
    """The README block after the curl-example marker: its shell commands (continuations joined)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- curl-example[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert block, "README.md: the curl example block (<!-- curl-example -->) is missing"
    return block.group(1).replace("\\\n", " ").strip().splitlines()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=[None])
def server(request, tiny_model_path):
    port = _free_port()
    command = [sys.executable, "-m", "phototox", "serve", "--port", str(port), "--model", str(tiny_model_path)]
    if request.param:
        command += ["--max-pixels", str(request.param)]
    proc = subprocess.Popen([*command, "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert f"phototox serve: http://127.0.0.1:{port}/v1/" in line, line
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_readme_curl_example_runs_against_a_live_server(server, tmp_path):
    from phototox.synth.fields import render_field

    commands = _readme_example()
    assert commands[0].startswith("phototox serve") and "8765" in commands[0]
    tifffile.imwrite(tmp_path / "field.tif", render_field(260, 300, 0.7, seed=8).image)
    script = "set -e\n" + "\n".join(c.replace("8765", str(server)) for c in commands[1:])
    run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    result = re.search(r"^X-Phototox-Result: (.*)$", run.stdout, re.M)
    assert result, run.stdout
    values = dict(item.split("=", 1) for item in result.group(1).strip().split(";"))
    assert values["pixel_size_um"] == "0.65" and values["pixel_size_source"] == "user"
    assert 0.0 <= float(values["mean_sick_probability"]) <= 1.0
    assert "X-Phototox-Width: 300" in run.stdout and "X-Phototox-Height: 260" in run.stdout
    sick_map = np.fromfile(tmp_path / "map.f32", "<f4").reshape(260, 300)  # as the README reads it
    assert float(sick_map.mean()) == pytest.approx(float(values["mean_sick_probability"]), abs=1e-5)


def test_png_body_matches_the_float32_body_and_bad_bodies_get_one_line(server, tmp_path):
    """PNG and raw float32 give the same map; a PNG header declaring too many pixels is refused unread."""
    import urllib.error
    import urllib.request

    import imageio.v3 as iio

    from phototox.synth.fields import render_field

    image = (render_field(260, 300, 0.7, seed=4).image >> 8).astype(np.uint8)

    def post(body: bytes, content_type: str, query: str = "") -> tuple[int, bytes, str]:
        url = f"http://127.0.0.1:{server}/v1/analyse?stride=16{query}"
        request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.read(), answer.headers.get("X-Phototox-Result", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), ""

    png = iio.imwrite("<bytes>", image, extension=".png")
    status, png_map, _ = post(png, "image/png")
    assert status == 200, png_map
    status, raw_map, _ = post(image.astype("<f4").tobytes(), "application/octet-stream", "&width=300&height=260")
    assert status == 200 and png_map == raw_map
    bomb = bytearray(png)
    bomb[16:24] = (100_000).to_bytes(4, "big") * 2  # declares 10^10 pixels
    status, text, _ = post(bytes(bomb), "image/png")
    assert status == 413 and b"--max-pixels" in text and text.count(b"\n") <= 1
    status, text, _ = post(b"GIF89a" + bytes(100), "image/png")
    assert status == 400 and b"does not start like a PNG file" in text
    status, text, _ = post(png, "image/gif")
    assert status == 415 and b"image/png, image/tiff" in text


@pytest.mark.parametrize("server", [260 * 300], indirect=True)
def test_png_of_the_largest_allowed_size_is_analysed_not_busy(server):
    """--max-pixels 78000 and a 300x260 PNG: body and image together stay within the pixel budget."""
    import urllib.request

    import imageio.v3 as iio

    from phototox.synth.fields import render_field

    png = iio.imwrite("<bytes>", (render_field(260, 300, 0.7, seed=4).image >> 8).astype(np.uint8), extension=".png")
    url = f"http://127.0.0.1:{server}/v1/analyse?stride=16"
    request = urllib.request.Request(url, data=png, headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200 and answer.headers["X-Phototox-Width"] == "300"
