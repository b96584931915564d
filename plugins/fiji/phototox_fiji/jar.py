"""Building the ImageJ plugin jar (``Phototox_.jar``) from its Java sources, and finding ImageJ.

The jar is compiled for Java 8 bytecode (``javac --release 8``: Fiji still runs on Java 8 in
places) against an ImageJ 1.x ``ij.jar`` -- the one inside the Fiji it is installed into, else
Debian's ``libij-java`` -- with the JDK that Fiji ships (``Fiji.app/java/...``) when it has one,
else ``javac`` on PATH. It is cached under ``<phototox cache>/fiji/<hash of the sources and of
that ij.jar>/`` (phototox's one cache, ``~/.cache/phototox`` unless ``PHOTOTOX_CACHE``): editing the sources rebuilds it, and a jar built against one ImageJ is never
reused for another.
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
    raise FijiSetupError(
        "cannot find ImageJ's ij.jar: install Fiji (give --fiji), Debian's libij-java, or set PHOTOTOX_IJ_JAR"
    )


JAVA_RELEASE = "8"


def find_javac(fiji_dir: str | os.PathLike | None = None) -> Path:
    """``javac`` of the JDK inside ``Fiji.app/java`` (any platform's layout) if there is one, else on PATH."""
    if fiji_dir:
        names = ("javac.exe", "javac") if os.name == "nt" else ("javac",)
        for name in names:
            found = sorted(Path(fiji_dir).glob(f"java/**/bin/{name}"))
            if found:
                return found[0]
    javac = shutil.which("javac")
    if javac is None:
        raise FijiSetupError(
            "javac not found: Fiji's bundled Java is a runtime only; install a JDK (8 or newer) "
            "to build the ImageJ plugin"
        )
    return Path(javac)


def sources_digest(ij_jar: str | os.PathLike | None = None) -> str:
    """Hash of the Java sources, the target release and (when given) the ij.jar compiled against."""
    digest = hashlib.sha256(JAVA_RELEASE.encode())
    if ij_jar is not None:
        digest.update(Path(ij_jar).read_bytes())
    for path in sorted(JAVA_SOURCES.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(JAVA_SOURCES)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """``fiji/`` in phototox's one download cache (:func:`phototox.models.cache.cache_root`)."""
    from phototox.models.cache import cache_root as phototox_cache

    return phototox_cache() / "fiji"


def build_jar(
    ij_jar: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    fiji_dir: str | os.PathLike | None = None,
) -> Path:
    """Compile the Java sources into ``Phototox_.jar`` (cached by source + ij.jar hash); return its path."""
    ij = find_ij_jar(ij_jar, fiji_dir)
    target = Path(out) if out else cache_root() / sources_digest(ij) / JAR_NAME
    if target.is_file() and out is None:
        return target
    javac = str(find_javac(fiji_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        classes = Path(tmp) / "classes"
        sources = sorted(str(p) for p in (JAVA_SOURCES / "phototox").glob("*.java"))
        proc = subprocess.run(
            [javac, *_release_flags(javac), "-encoding", "UTF-8", "-cp", str(ij), "-d", str(classes), *sources],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise FijiSetupError(f"javac failed:\n{proc.stderr}")
        from phototox.io.images import atomic_path

        with atomic_path(target) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
            jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: phototox\n")
            jar.write(JAVA_SOURCES / "plugins.config", "plugins.config")
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, str(path.relative_to(classes)))
    return target


def _release_flags(javac: str) -> list[str]:
    """``--release 8`` (JDK 9+), or ``-source 8 -target 8`` for a Java 8 javac, which has no --release."""
    proc = subprocess.run([javac, "-version"], capture_output=True, text=True, check=False)
    version = (proc.stdout + proc.stderr).strip()
    return ["-source", "1.8", "-target", "1.8"] if "1.8." in version else ["--release", JAVA_RELEASE]


def install_plugin(fiji_dir: str | os.PathLike, ij_jar: str | os.PathLike | None = None) -> Path:
    """Build the jar against that Fiji's own ImageJ (jars/ij-*.jar) and copy it into ``Fiji.app/plugins``."""
    plugins = Path(fiji_dir) / "plugins"
    if not plugins.is_dir():
        raise FijiSetupError(f"{fiji_dir}: not a Fiji/ImageJ folder (no plugins/ inside)")
    own = sorted(Path(fiji_dir).glob("jars/ij-*.jar"))
    jar = build_jar(ij_jar or (own[-1] if own else None), fiji_dir=fiji_dir)
    target = plugins / JAR_NAME
    with tempfile.NamedTemporaryFile(dir=plugins, prefix=".Phototox_", suffix=".tmp", delete=False) as tmp:
        tmp.write(jar.read_bytes())
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, target)
    return target
