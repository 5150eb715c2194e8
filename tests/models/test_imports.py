"""The pipeline's models import no web framework and nothing of the service (STYLE.md, principle 4).

Every module under models/ is found by walking the folder, so a new module is covered without an
edit here. The imports run in a fresh interpreter: this test process has the service loaded already.
"""

from __future__ import annotations

from pathlib import Path

import hotpose.models
from tests.conftest import modules_imported_by

MODELS_DIR = Path(hotpose.models.__file__).resolve().parent
FORBIDDEN = ("fastapi", "starlette", "uvicorn", "pydantic_settings", "httpx", "websockets", "hotpose.service")


def models_modules() -> list[str]:
    """`hotpose.models...` names of every Python module under models/ (packages by their __init__)."""
    names = []
    for path in sorted(MODELS_DIR.rglob("*.py")):
        parts = path.relative_to(MODELS_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(("hotpose", "models", *parts)))
    return names


def test_the_walk_finds_the_modules() -> None:
    found = models_modules()
    for name in ("hotpose.models", "hotpose.models.hot", "hotpose.models.detector", "hotpose.models.detector.base"):
        assert name in found


def test_models_import_no_web_framework_and_nothing_of_the_service() -> None:
    modules = models_modules()
    loaded = modules_imported_by(modules)
    assert set(modules) <= set(loaded)
    offending = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert offending == [], f"importing models/ pulled in {offending}"
