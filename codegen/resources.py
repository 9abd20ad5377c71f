"""Where tfgen's own data lives: templates/, firmware/, boards/.

In a checkout (or an editable install) they sit at the repository's top; an installed wheel carries
them inside the package as ``codegen/_data/<name>``.
"""
from __future__ import annotations

from pathlib import Path

from codegen.errors import TfgenError

PACKAGE_DIR = Path(__file__).resolve().parent
RESOURCE_DIRS = ("templates", "firmware", "boards")
DATA_DIR = PACKAGE_DIR / "data"          # tfgen's measured tables (codegen/data/*.json)


def resource_dir(name: str) -> Path:
    if name not in RESOURCE_DIRS:
        raise ValueError(f"unknown resource directory {name!r}")
    for candidate in (PACKAGE_DIR / "_data" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise TfgenError(f"tfgen's {name}/ directory is missing from {PACKAGE_DIR}",
                     "reinstall tfgen (`pip install --force-reinstall tfgen`)")
