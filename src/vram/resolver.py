"""Model resolution: a catalog id / alias, a Hub repo id, a config.json, a model folder or a weights file ->
ResolvedModel, cached."""

from __future__ import annotations

import os
from _thread import allocate_lock
from time import monotonic

from .catalog import find_model
from .errors import BadInput, UnknownModel
from .model import ModelSpec, load_config_file, model_from_config
from .resolved import ResolvedModel

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (issue 18, the CLI's start)
    from pathlib import Path
    from typing import Any

# Resolved models, cached: a catalog entry for the life of the process (its data files are part of the package), a
# config file / weights file / model folder for as long as the files' (mtime, size) are unchanged, a Hub repo for
# HUB_TTL_S. Bounded (least recently used first out) and safe to use from several threads: a miss computes outside
# the lock, so two threads may resolve the same model once each; either result is the same and one is kept.
CACHE_SIZE = 256
HUB_TTL_S = 600.0
_cache: dict[tuple[Any, ...], tuple[ResolvedModel, float]] = {}
_cache_lock = allocate_lock()


def clear_model_cache() -> None:
    """Forget every resolved model (tests; a long-lived process that wants the Hub read again)."""
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple[Any, ...], now: float) -> ResolvedModel | None:
    with _cache_lock:
        hit = _cache.pop(key, None)
        if hit is None or (hit[1] and now > hit[1]):  # missing, or a Hub entry past its time
            return None
        _cache[key] = hit  # most recently used last
        return hit[0]


def _remember(key: tuple[Any, ...], rm: ResolvedModel, expires: float = 0.0) -> ResolvedModel:
    with _cache_lock:
        _cache.pop(key, None)
        _cache[key] = (rm, expires)
        while len(_cache) > CACHE_SIZE:
            del _cache[next(iter(_cache))]
    return rm


def _files_key(p: Path) -> tuple[Any, ...] | None:
    """What a model read from `p` depends on: the path and the (mtime, size) of every file it reads (config.json,
    .safetensors shards, the .gguf file). None when something is missing (the uncached path says what)."""
    try:
        p = p.resolve()
        if p.is_dir():
            files = [p / "config.json", *sorted(p.glob("*.safetensors")), *sorted(p.glob("*.safetensors.index.json"))]
        elif p.suffix == ".safetensors":
            files = [p, p.parent / "config.json", *sorted(p.parent.glob("*.safetensors.index.json"))]
        else:
            files = [p]
        stamps = []
        for f in files:
            st = f.stat()
            stamps.append((f.name, st.st_mtime_ns, st.st_size))
    except OSError:
        return None
    return ("path", str(p), tuple(stamps))


def resolve_model(ref: str | ModelSpec | ResolvedModel) -> ResolvedModel:
    """A catalog id / alias / Hub repo id, a config.json path or a model folder. Cached (see CACHE_SIZE)."""
    if isinstance(ref, ResolvedModel):
        return ref
    if isinstance(ref, ModelSpec):
        return ResolvedModel(ref, None, "spec")
    text = str(ref).strip()
    if not text:
        raise BadInput("model: empty model name", field="model")
    now = monotonic()
    looks_like_path = text.endswith(".json") or text.startswith((".", "/", "~")) or os.path.exists(text)
    if looks_like_path:
        from pathlib import Path  # not for a catalog id: pathlib is a few milliseconds of a cold start

        p = Path(text).expanduser()
        key = _files_key(p)
        if key is None:
            return _resolve_path(p)
        return _cached(key, now) or _remember(key, _resolve_path(p))
    key = ("name", text)
    hit = _cached(key, now)
    if hit is not None:
        return hit
    try:
        entry = find_model(text)
    except UnknownModel:
        if text.count("/") == 1 and not text.startswith("/") and " " not in text:
            from .sources.hub import resolve_hub

            return _remember(key, resolve_hub(text), now + HUB_TTL_S)
        raise
    if entry.kind != "llm":
        from .families import family_spec

        return _remember(key, ResolvedModel(family_spec(entry), entry, f"catalog:{entry.id}"))
    return _remember(key, ResolvedModel(model_from_config(entry.config, name=entry.id), entry, f"catalog:{entry.id}"))


def _resolve_path(p: Path) -> ResolvedModel:
    if (
        (p.is_file() and p.suffix == ".gguf")
        or (p.is_dir() and any(p.glob("*.safetensors")))
        or (p.is_file() and p.suffix == ".safetensors")
    ):
        from .sources import resolve_local_weights

        return resolve_local_weights(p)
    cfg = load_config_file(p)
    return ResolvedModel(model_from_config(cfg, name=p.stem if p.is_file() else p.name), None, str(p))
