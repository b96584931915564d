"""``phototox fiji``: start ImageJ/Fiji with the phototox bridge, run a macro, build or install the plugin."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from phototox.errors import PhototoxError


def register(sub) -> None:
    p = sub.add_parser("fiji", help="start ImageJ/Fiji with the phototox bridge (in-process route)")
    p.add_argument("--macro", help="run this .ijm macro file, print its log, and exit")
    p.add_argument("--args", default="", help="argument string passed to the macro (getArgument())")
    p.add_argument(
        "--fiji", help="a Fiji.app folder: start it with pyimagej (needs pyimagej, and the network the first time)"
    )
    p.add_argument("--ij-jar", help="ImageJ 1.x ij.jar to use without Fiji (default: Debian's libij-java)")
    p.add_argument(
        "--model", default="default", help="model for the bridge: shipped default, a .pt file, a package or a zoo id"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    p.add_argument(
        "--headless",
        action="store_true",
        help="no display at all (macros that open images fail); without it and without DISPLAY, a macro "
        "runs on a virtual display (Xvfb) that phototox starts and stops",
    )
    p.add_argument("--build-jar", metavar="OUT", help="only build Phototox_.jar to OUT and exit")
    p.add_argument("--install-plugin", metavar="FIJI_APP", help="only copy Phototox_.jar into FIJI_APP/plugins")
    p.set_defaults(func=run)


def run(args) -> int:
    from .jar import FijiSetupError, build_jar, install_plugin

    try:
        if args.build_jar:
            print(build_jar(args.ij_jar, args.build_jar))
            return 0
        if args.install_plugin:
            print(
                f"installed {install_plugin(args.install_plugin, args.ij_jar)}; restart Fiji, then use "
                "Plugins>Phototox>Measure Phototoxicity (needs 'phototox serve' running, or 'phototox fiji')"
            )
            return 0
        from phototox.extras import require_extra

        require_extra("fiji", "phototox fiji")
        from .bridge import start

        _need_a_display(args)
        session = start(args.model, args.device, args.fiji, args.ij_jar, args.headless)
    except FijiSetupError as exc:
        _stop_display()
        raise PhototoxError(str(exc)) from exc
    except BaseException:
        _stop_display()
        raise
    if args.macro:
        macro = Path(args.macro)
        if not macro.is_file():
            raise PhototoxError(f"{macro}: no such macro file")
        if args.headless:  # headless ImageJ prints its log and exceptions to Java's System.out
            from .display import HEADLESS_HELP

            returned, printed = session.run_macro_held(macro.read_text(), args.args)
            if "java.awt.HeadlessException" in printed:  # the macro needs a display: one line, not a trace
                sys.stderr.write(f"phototox fiji: {HEADLESS_HELP}\n")
                _exit_now(1)
            sys.stdout.write(printed)
        else:
            returned = session.run_macro(macro.read_text(), args.args)
        log = session.log()
        if log:
            sys.stdout.write(log if log.endswith("\n") else log + "\n")
        if returned and returned != "[aborted]":
            print(returned)
        failed = session.failures() > 0 or returned == "[aborted]"
        _exit_now(1 if failed else 0)
    print(f"ImageJ started ({session.kind}) with the phototox bridge; close ImageJ to quit.", flush=True)
    instance = _start_gui(session)
    while instance is not None and _visible(instance):
        time.sleep(0.5)
    _exit_now(0)
    return 0


_DISPLAY: list = []  # the virtual display this command started, stopped by _exit_now


def _need_a_display(args) -> None:
    """Without an X display: start Xvfb for a macro, refuse the window in one line (unless --headless)."""
    from .display import needs_display, start_virtual_display
    from .jar import FijiSetupError

    if args.headless or not needs_display():
        return
    if not args.macro:
        raise FijiSetupError(
            "no display (DISPLAY is unset) for the ImageJ window; give --macro to run a macro on a virtual display"
        )
    _DISPLAY.append(start_virtual_display())


def _stop_display() -> None:
    while _DISPLAY:
        _DISPLAY.pop().stop()


def _start_gui(session):
    import scyjava

    if session.gateway is not None:
        session.gateway.ui().showUI()
        return scyjava.jimport("ij.IJ").getInstance()
    return scyjava.jimport("ij.ImageJ")()


def _visible(instance) -> bool:
    try:
        return bool(instance.isShowing())
    except Exception:
        return False


def _exit_now(code: int) -> None:
    """Leave without tearing the JVM down under the Python proxies (JPype can crash doing that)."""
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    _stop_display()
    os._exit(code)
