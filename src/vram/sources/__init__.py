"""Where a model's description comes from besides the catalog: local weight files (safetensors headers, GGUF)
and the Hugging Face Hub. Each source gives a ResolvedModel whose weight bytes are the tensors' own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, SourceError
from ..model import ModelSpec, load_config_file, model_from_config
from ..records import replace

if TYPE_CHECKING:
    from ..resolved import ResolvedModel
    from .safetensors import WeightsInfo


def reconcile_params(spec: ModelSpec, header_params: int, source: str) -> ModelSpec:
    """Make the spec's parameter count the headers' exact one (extra tensors, e.g. a vision tower, or a config
    that leaves something out); the difference is kept as `extra_params` and said in the notes."""
    diff = header_params - spec.params
    if not diff:
        return spec
    note = (
        f"parameter count from the tensor headers ({header_params:,}); config.json alone gives "
        f"{spec.params:,} ({diff:+,})"
    )
    return replace(spec, extra_params=spec.extra_params + diff, notes=(*spec.notes, note))


def model_from_headers(config: dict[str, Any], info: WeightsInfo, name: str, source: str) -> ResolvedModel:
    """config.json + safetensors headers -> ResolvedModel with exact parameters and stored bytes."""
    from ..families import entry_from_config, family_spec
    from ..resolved import ResolvedModel

    entry = entry_from_config(config, name, hf_repo=source.removeprefix("hub:") if source.startswith("hub:") else "")
    if entry is not None:  # speech, vision-language, embedding: estimated by vram.families
        spec = family_spec(entry)
        notes = (*spec.notes, f"weights: {info.summary()} (from safetensors headers)", *info.notes)
        return ResolvedModel(
            replace(spec, notes=notes), entry, source, weights_override_bytes=info.bytes, weights_info=info
        )
    spec = model_from_config(config, name=name)
    spec = reconcile_params(spec, info.params, source)
    notes = (*spec.notes, f"weights: {info.summary()} (from safetensors headers)", *info.notes)
    return ResolvedModel(replace(spec, notes=notes), None, source, weights_override_bytes=info.bytes, weights_info=info)


def resolve_local_weights(path: str | Path) -> ResolvedModel:
    """A .gguf file, a .safetensors file (config.json beside it) or a folder of safetensors shards + config.json."""
    from ..resolved import ResolvedModel

    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        from .gguf import gguf_spec, gguf_weights, read_gguf_model

        g = read_gguf_model(p)
        w = gguf_weights(g)
        spec = gguf_spec(g, w, re.sub(r"-\d{5}-of-\d{5}$", "", p.stem))
        spec = replace(spec, notes=(*spec.notes, f"weights: {w.summary()} (from GGUF tensor infos)"))
        return ResolvedModel(spec, None, f"gguf:{p}", weights_override_bytes=w.bytes, weights_info=w)
    from .safetensors import read_local_weights

    folder = p if p.is_dir() else p.parent
    if not (folder / "config.json").is_file():
        raise ConfigError(
            f"{p}: safetensors weights need the model's config.json beside them (in {folder})", field="model"
        )
    config = load_config_file(folder)
    qc = config.get("quantization_config")
    info = read_local_weights(p, quant_config=qc if isinstance(qc, dict) else None)
    if info.params == 0:
        raise SourceError(f"{p}: the safetensors files hold no tensors")
    name = p.stem if p.is_file() else p.name
    return model_from_headers(config, info, name, f"safetensors:{p}")


__all__ = ["model_from_headers", "reconcile_params", "resolve_local_weights"]
