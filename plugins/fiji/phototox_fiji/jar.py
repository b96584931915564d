"""Building the ImageJ plugin jar (``Phototox_.jar``) from its Java sources, and finding ImageJ.

The jar is compiled with ``javac`` against an ImageJ 1.x ``ij.jar`` (Fiji's, or Debian's
``libij-java``) and cached under ``<phototox cache>/fiji/<hash of the sources>/`` (phototox's one
cache, ``~/.cache/phototox`` unless ``PHOTOTOX_CACHE``), so editing the sources rebuilds it and
nothing is compiled twice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

JAVA_SOURCES = Path(__file__).resolve().parent / "java"
JAR_NAME = "Phototox_.jar"
IJ_JAR_CANDIDATES = ("/usr/share/java/ij.jar",)


class FijiSetupError(RuntimeError):
    """ImageJ, Java or the plugin jar cannot be found or built."""


def find_ij_jar(explicit: str | os.PathLike | None = None, fiji_dir: str | os.PathLike | None = None) -> Path:
    """Locate an ImageJ 1.x ij.jar: argument, PHOTOTOX_IJ_JAR, Fiji.app/jars/ij-*.jar, Debian's."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if os.environ.get("PHOTOTOX_IJ_JAR"):
        candidates.append(Path(os.environ["PHOTOTOX_IJ_JAR"]))
    if fiji_dir:
        candidates += sorted(Path(fiji_dir).glob("jars/ij-*.jar"))
    candidates += [Path(p) for p in IJ_JAR_CANDIDATES]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FijiSetupError("cannot find ImageJ's ij.jar: install Fiji (give --fiji), Debian's libij-java, "
                         "or set PHOTOTOX_IJ_JAR")


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(JAVA_SOURCES.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(JAVA_SOURCES)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """``fiji/`` in phototox's one download cache (:func:`phototox.models.cache.cache_root`)."""
    from phototox.models.cache import cache_root as phototox_cache

    return phototox_cache() / "fiji"


def build_jar(ij_jar: str | os.PathLike | None = None, out: str | os.PathLike | None = None) -> Path:
    """Compile the Java sources into ``Phototox_.jar`` (cached by source hash) and return its path."""
    target = Path(out) if out else cache_root() / sources_digest() / JAR_NAME
    if target.is_file() and out is None:
        return target
    javac = shutil.which("javac")
    if javac is None:
        raise FijiSetupError("javac not found: install a JDK (11 or newer) to build the ImageJ plugin")
    ij = find_ij_jar(ij_jar)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        classes = Path(tmp) / "classes"
        sources = sorted(str(p) for p in (JAVA_SOURCES / "phototox").glob("*.java"))
        proc = subprocess.run([javac, "--release", "11", "-encoding", "UTF-8", "-cp", str(ij), "-d", str(classes),
                               *sources], capture_output=True, text=True)
        if proc.returncode != 0:
            raise FijiSetupError(f"javac failed:\n{proc.stderr}")
        from phototox.images import atomic_path

        with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: phototox\n")
            jar.write(JAVA_SOURCES / "plugins.config", "plugins.config")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, str(path.relative_to(classes)))
    return target


def install_plugin(fiji_dir: str | os.PathLike, ij_jar: str | os.PathLike | None = None) -> Path:
    """Copy the built jar into ``Fiji.app/plugins`` (built against that Fiji's ij.jar)."""
    plugins = Path(fiji_dir) / "plugins"
    if not plugins.is_dir():
        raise FijiSetupError(f"{fiji_dir}: not a Fiji/ImageJ folder (no plugins/ inside)")
    jar = build_jar(ij_jar or find_ij_jar(fiji_dir=fiji_dir))
    target = plugins / JAR_NAME
    shutil.copyfile(jar, target)
    return target
