"""Static files of the web UI under content-hashed URLs: our own (``static/``) and the npm packages in ``web/node_modules``.

Every URL carries a hash of what it serves (``/static/uplot-3f2a9c1e/uPlot.iife.min.js``), so the
files are cached for a year and a new release or ``npm ci`` changes the URL instead of waiting for
caches to expire. Relative references inside a package (Bootstrap Icons' CSS -> ``fonts/``) and
between our ES modules keep working because one hash covers one folder.

Third-party packages are never part of this repository: ``npm ci --prefix web`` installs the
versions pinned in ``web/package-lock.json``. They are looked up in ``$CC_WEB_ASSETS_DIR`` (a
``node_modules`` folder; when it is set, only there), then ``web/node_modules`` of the source tree
this package runs from, then ``web/node_modules`` below the working directory. Without them pages
still render (unstyled, no plots) with a banner that says how to install them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ASSETS_ENV = "CC_WEB_ASSETS_DIR"
NODE_MODULES = Path("web") / "node_modules"
OWN_STATIC = Path(__file__).with_name("static")
INSTALL_HINT = "npm ci --prefix web --ignore-scripts"
#: A year: the URL changes whenever the content does.
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Package:
    """One npm package: the folder served (relative to the package) and a file that proves it is installed."""

    name: str
    folder: str
    marker: str


VENDOR = (
    Package("bootstrap", "dist", "css/bootstrap.min.css"),
    Package("bootstrap-icons", "font", "bootstrap-icons.min.css"),
    Package("uplot", "dist", "uPlot.iife.min.js"),
)


def find_node_modules(package: str = "uplot") -> Path | None:
    """The node_modules folder that holds ``package`` (see the module docstring for the search order), or None."""
    override = os.environ.get(ASSETS_ENV)
    candidates = [Path(override)] if override else [Path(__file__).resolve().parents[2] / NODE_MODULES,
                                                     Path.cwd() / NODE_MODULES]
    for folder in candidates:
        if (folder / package / "package.json").is_file():
            return folder.resolve()
    return None


def _folder_hash(folder: Path, files: list[Path] | None = None) -> str:
    """Eight hex digits over the names and contents (or, for big vendor folders, sizes and times) of a folder."""
    digest = hashlib.sha256()
    for path in sorted(files if files is not None else (p for p in folder.rglob("*") if p.is_file())):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


class Assets:
    """Where each asset folder lives and its hashed URL prefix; computed once per server start."""

    def __init__(self, node_modules: Path | None = None, *, own: Path = OWN_STATIC) -> None:
        self.node_modules = node_modules if node_modules is not None else find_node_modules()
        #: URL prefix ("/static/<name>-<hash>") -> folder on disk
        self.roots: dict[str, Path] = {}
        #: asset name ("app", "bootstrap", ...) -> URL prefix
        self.prefixes: dict[str, str] = {}
        self._add("app", own, _folder_hash(own))
        self.missing: list[str] = []
        for package in VENDOR:
            folder = self.node_modules / package.name / package.folder if self.node_modules else None
            if folder is None or not (folder / package.marker).is_file():
                self.missing.append(package.name)
                continue
            # The installed version identifies the content; hashing megabytes of fonts at every start would not.
            version = (self.node_modules / package.name / "package.json").read_bytes()  # type: ignore[operator]
            self._add(package.name, folder, hashlib.sha256(version).hexdigest()[:8])

    def _add(self, name: str, folder: Path, digest: str) -> None:
        prefix = f"/static/{name.replace('.', '_')}-{digest}"
        self.roots[prefix] = folder.resolve()
        self.prefixes[name] = prefix

    def url(self, name: str, path: str) -> str:
        """The URL of ``path`` inside asset folder ``name``; "" when that package is not installed."""
        prefix = self.prefixes.get(name)
        return f"{prefix}/{path}" if prefix else ""

    def locate(self, prefix: str) -> Path | None:
        return self.roots.get(f"/static/{prefix}")
