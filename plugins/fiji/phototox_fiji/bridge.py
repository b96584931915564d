"""The in-process route: start ImageJ in this Python process and register the phototox handler.

Two ways to start ImageJ:

* a full Fiji with pyimagej (``imagej.init(<Fiji.app>)``), as Fiji users have it online;
* ImageJ 1.x ``ij.jar`` on scyjava/JPype (what works offline, e.g. Debian's ``libij-java``).

Either way the phototox plugin jar goes on the class path and a Python object implementing
``phototox.PhototoxHandler`` is registered, so ``run("Measure Phototoxicity", ...)`` in a macro
runs the same :class:`phototox.maps.inference.Predictor` as the CLI and CellProfiler.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from phototox.errors import PhototoxError
from phototox.results.analysis_requests import PredictorPool, analyse_pixels, parse_imagej_options

from .jar import FijiSetupError, build_jar, find_ij_jar


@dataclass
class ImageJSession:
    """A started ImageJ with the handler registered."""

    kind: str  # "pyimagej" or "ij1"
    plugins_dir: Path | None
    gateway: object = None  # the pyimagej gateway, when started through pyimagej
    handler: object = None

    headless: bool = False

    def run_macro(self, code: str, arguments: str = "") -> str:
        """Run ImageJ 1.x macro code; return the macro's return value as text ('' if none)."""
        result = _java("ij.IJ").runMacro(code, arguments)
        return "" if result is None else str(result)

    def run_macro_held(self, code: str, arguments: str = "") -> tuple[str, str]:
        """:meth:`run_macro` with what Java prints to its standard output held; return both.

        Headless ImageJ 1.x logs (and prints exceptions) to ``System.out``; holding it lets the
        caller turn a stack trace it recognises into one line.
        """
        system, held = _java("java.lang.System"), _java("java.io.ByteArrayOutputStream")()
        out = system.out
        system.setOut(_java("java.io.PrintStream")(held, True, "UTF-8"))
        try:
            returned = self.run_macro(code, arguments)
        finally:
            system.setOut(out)
        return returned, str(held.toString("UTF-8"))

    def failures(self) -> int:
        """How many 'Measure Phototoxicity' runs stopped their macro with an error."""
        return int(_java("phototox.Phototox").failures())

    def log(self) -> str:
        text = _java("ij.IJ").getLog()
        return "" if text is None else str(text)


def _java(name: str):
    import scyjava

    return scyjava.jimport(name)


def make_handler(pool: PredictorPool):
    """A Java ``phototox.PhototoxHandler`` backed by the predictor pool (JVM must be running)."""
    import traceback

    from jpype import JImplements, JOverride

    @JImplements("phototox.PhototoxHandler")
    class Handler:
        @JOverride
        def analyse(self, pixels, width, height, options, map_out):
            # Exceptions do not cross JPype proxies reliably: failures come back as "error: ..." lines.
            try:
                values = np.array(pixels, dtype=np.float32)  # a copy: never keep a view of Java memory
                params = parse_imagej_options(str(options))
                line, sick_map = analyse_pixels(
                    pool, values, int(width), int(height), params, source=f"ImageJ image ({int(width)}x{int(height)})"
                )
                map_out[:] = sick_map.ravel()
                return line
            except PhototoxError as exc:  # the user's problem: say it plainly
                return f"error: {exc}"
            except Exception as exc:  # a bug: keep the traceback visible
                traceback.print_exc()
                return f"error: phototox internal error: {type(exc).__name__}: {exc}"

    return Handler()


def start(
    model: str = "default",
    device: str = "auto",
    fiji_dir: str | os.PathLike | None = None,
    ij_jar: str | os.PathLike | None = None,
    headless: bool = False,
) -> ImageJSession:
    """Start ImageJ (pyimagej for a Fiji folder, else ij.jar via scyjava) with the bridge ready."""
    import scyjava

    scyjava.config.set_java_constraints(fetch="auto")  # use the installed JDK; download only if there is none
    if scyjava.jvm_started():
        raise FijiSetupError("a JVM is already running in this process; start ImageJ once per process")
    if fiji_dir is not None and not any(Path(fiji_dir).glob("jars/imagej-[0-9]*.jar")):
        raise FijiSetupError(
            f"{fiji_dir}: no ImageJ2 jars (jars/imagej-*.jar), so pyimagej cannot start it; give a "
            "complete Fiji.app, or leave out --fiji to use ImageJ 1.x (--ij-jar)"
        )
    plugin_jar = build_jar(find_ij_jar(ij_jar, fiji_dir), fiji_dir=fiji_dir)
    pool = PredictorPool(model, device)
    pool.get()  # load the model now: errors show before ImageJ starts
    if fiji_dir is not None:
        try:
            import imagej
        except ImportError as exc:
            raise FijiSetupError("starting a Fiji folder needs pyimagej (pip install pyimagej)") from exc
        from .jar import install_plugin

        install_plugin(fiji_dir)  # the menu command comes from Fiji.app/plugins
        scyjava.config.add_classpath(str(plugin_jar))  # and Python sees the same class (parent-first loading)
        gateway = imagej.init(str(fiji_dir), mode="headless" if headless else "interactive")
        session = ImageJSession("pyimagej", Path(fiji_dir) / "plugins", gateway)
    else:
        ij = find_ij_jar(ij_jar)
        scyjava.config.endpoints.clear()
        plugins_home = plugin_jar.parent / "home"
        (plugins_home / "plugins").mkdir(parents=True, exist_ok=True)
        linked = plugins_home / "plugins" / plugin_jar.name
        if not linked.exists():
            linked.write_bytes(plugin_jar.read_bytes())
        scyjava.config.add_option(f"-Dplugins.dir={plugins_home}")
        if headless:
            scyjava.config.add_option("-Djava.awt.headless=true")
        scyjava.config.add_classpath(str(ij), str(plugin_jar))
        scyjava.start_jvm()
        session = ImageJSession("ij1", plugins_home / "plugins")
    session.handler = make_handler(pool)
    _java("java.lang.System").setProperty("phototox.model", pool.get().model.label)
    _java("phototox.Phototox").setHandler(session.handler)
    return session
