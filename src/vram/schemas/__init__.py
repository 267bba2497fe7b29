"""JSON Schemas (draft 2020-12) of every `--json` output, versioned: ``NAME.vN.json`` with ``$id``
``urn:vram:schema:NAME:N``. A field is never removed or retyped within a version; new fields may appear (consumers
ignore what they do not know). vram 0.1.x writes version 1 of each.

    estimate  `vram estimate --json`, POST /api/v1/estimate
    fit       `vram fit --json` (and each element of `vram compare --json`)
    which     `vram which --json`
    explain   `vram explain --json`
    models    `vram models --fits SPEC --json`
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
VERSION = 1
NAMES = ("estimate", "fit", "which", "explain", "models")


def schema_id(name: str, version: int = VERSION) -> str:
    return f"urn:vram:schema:{name}:{version}"


@cache
def _load(file_name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
    return data


def load(name: str, version: int = VERSION) -> dict[str, Any]:
    """The schema document for one output (`name` in NAMES, or "_common" for the shared definitions)."""
    return _load(f"{name}.v{version}.json")


def all_schemas() -> list[dict[str, Any]]:
    """Every schema document shipped (all versions), for building a resolver."""
    return [_load(p.name) for p in sorted(SCHEMA_DIR.glob("*.v*.json"))]
