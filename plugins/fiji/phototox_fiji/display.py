"""A virtual X display for ImageJ on machines without one (servers, containers, SSH sessions).

ImageJ 1.x macros open images through AWT, which needs an X display even in batch mode. When
``DISPLAY`` is unset on Linux, ``phototox fiji --macro`` starts ``Xvfb`` itself (it picks a free
display number with ``-displayfd``), points the JVM at it and stops it on exit; without Xvfb it
stops with one line saying what to install or run.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from .jar import FijiSetupError

START_TIMEOUT_S = 15.0
"""How long Xvfb may take to announce its display number."""
HEADLESS_HELP = (
    "this macro needs a display (java.awt.HeadlessException: ImageJ 1.x opens images and menus through AWT), "
    "so it cannot run with --headless; leave out --headless (phototox then starts a virtual display, Xvfb) "
    "or run the command under 'xvfb-run -a'"
)
NO_DISPLAY_HELP = (
    "no display: DISPLAY is unset and Xvfb is not installed; install it (apt-get install xvfb) "
    "or run under a virtual display: xvfb-run -a phototox fiji ..."
)


@dataclass
class VirtualDisplay:
    """A running Xvfb and the DISPLAY it serves."""

    process: subprocess.Popen
    display: str

    def stop(self) -> None:
        """Stop the Xvfb (idempotent)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def needs_display() -> bool:
    """Whether AWT would find no X display here (Linux/BSD without ``DISPLAY``)."""
    return not sys.platform.startswith(("darwin", "win")) and not os.environ.get("DISPLAY")


def start_virtual_display(xvfb: str | None = None) -> VirtualDisplay:
    """Start Xvfb on a free display number and set ``DISPLAY`` for this process (and its JVM)."""
    xvfb = xvfb or shutil.which("Xvfb")
    if xvfb is None:
        raise FijiSetupError(NO_DISPLAY_HELP)
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [xvfb, "-displayfd", str(write_end), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            pass_fds=(write_end,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        os.close(write_end)
    try:
        number = _read_line(read_end, START_TIMEOUT_S)  # Xvfb exits if the pipe closes before its newline
    finally:
        os.close(read_end)
    if not number.isdigit():
        VirtualDisplay(process, "").stop()
        raise FijiSetupError(
            f"{xvfb} did not start a virtual display within {START_TIMEOUT_S:g} s; "
            "run under one yourself: xvfb-run -a phototox fiji ..."
        )
    os.environ["DISPLAY"] = f":{number}"
    return VirtualDisplay(process, f":{number}")


def _read_line(fd: int, timeout_s: float) -> str:
    """The first line written to ``fd`` within ``timeout_s`` ('' on timeout or end of file)."""
    deadline = time.monotonic() + timeout_s
    data = b""
    while b"\n" not in data and len(data) < 64:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 64) if ready else b""
        if not chunk:
            return ""
        data += chunk
    return data.decode(errors="replace").strip()
