"""Vision-language models (Qwen2.5-VL): a ViT vision tower whose merged patches become tokens of the language model.

Parameters: the text model through the same code as decoder-only models, plus the vision tower as transformers
builds Qwen2_5_VisionTransformerPretrainedModel: a Conv3d patch embedding (3 × temporal 2 × 14 × 14 → width, no
bias), `depth` blocks (two RMSNorms, fused qkv and output projections with bias, a gated SiLU MLP with bias) and the
patch merger (RMSNorm, Linear(4·width, 4·width), GELU, Linear(4·width, text hidden)).

Image tokens: the image is resized to multiples of 28 (patch 14 × merge 2); it gives (H/14)·(W/14) patches in the
vision tower and a quarter as many tokens in the language model. The vision tower runs before the prompt's
prefill; its peak (one block's activations over all patches, SDPA) is compared with the language model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..components import Component
from ..errors import ConfigError
from ..model import ModelSpec, model_from_config
from ..records import replace
from ..request import VisionOptions

if TYPE_CHECKING:
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate


def _i(c: Mapping[str, Any], k: str) -> int:
    v = c.get(k)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"vision config is missing {k}", field="model")
    return v


def vision_params(vc: Mapping[str, Any]) -> int:
    w, inter, depth = _i(vc, "hidden_size"), _i(vc, "intermediate_size"), _i(vc, "depth")
    patch, tp = _i(vc, "patch_size"), _i(vc, "temporal_patch_size")
    merge = _i(vc, "spatial_merge_size")
    out = _i(vc, "out_hidden_size")
    chans = vc.get("in_chans", vc.get("in_channels", 3))
    embed = int(chans) * tp * patch * patch * w
    block = 2 * w + (w * 3 * w + 3 * w) + (w * w + w) + 2 * (w * inter + inter) + (inter * w + w)
    m = w * merge * merge
    merger = w + (m * m + m) + (m * out + out)
    return embed + depth * block + merger


def _text_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    text = dict(cfg.get("text_config") or cfg)
    text.pop("vision_config", None)
    text["model_type"] = "qwen2"
    return text


def vlm_spec(cfg: Mapping[str, Any], name: str) -> ModelSpec:
    vc = cfg.get("vision_config")
    if not isinstance(vc, Mapping):
        raise ConfigError("vision-language config has no vision_config", field="model")
    spec = model_from_config(_text_config(cfg), name=name)
    vp = vision_params(vc)
    return replace(
        spec,
        extra_params=vp,
        extra_description="vision tower and patch merger",
        notes=(*spec.notes, f"vision tower + merger: {vp:,} parameters"),
    )


def image_tokens(vc: Mapping[str, Any], width: int, height: int) -> tuple[int, int]:
    """(patches in the vision tower, tokens in the language model) for one image."""
    unit = _i(vc, "patch_size") * _i(vc, "spatial_merge_size")
    w = max(unit, round(width / unit) * unit)
    h = max(unit, round(height / unit) * unit)
    patches = (w // _i(vc, "patch_size")) * (h // _i(vc, "patch_size"))
    return patches, patches // (_i(vc, "spatial_merge_size") ** 2)


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    from ..engines.transformers import estimate as text_estimate
    from ..resolved import ResolvedModel as RM

    assert rm.entry is not None
    vis = wl.family_options(VisionOptions)
    cfg = rm.entry.config
    vc = cfg["vision_config"]
    patches, toks = image_tokens(vc, vis.width, vis.height)
    n_img = max(0, vis.images)
    ctx = wl.context + n_img * toks
    text_wl = replace(wl, context=ctx, family=None)
    est = text_estimate(RM(rm.spec, None, rm.source), text_wl)
    e = 2 if wl.dtype in ("bfloat16", "float16") else 4
    w, inter = _i(vc, "hidden_size"), _i(vc, "intermediate_size")
    n_patch = wl.batch * n_img * patches
    vision_peak = n_patch * (4 * w + 3 * inter) * e + n_patch * w * 4 * e
    tower = Component(
        "vision_encoder",
        vision_peak,
        f"vision tower over {n_img} image(s) × {patches:,} patches ({vis.width}×{vis.height}, 14-px "
        f"patches) × batch {wl.batch}: one block's hidden states, qkv and gated MLP ({inter})",
    )
    lm_acts = est.activation_bytes
    extra_peak = max(0, vision_peak - lm_acts - est.kv_cache_bytes)
    breakdown = (*est.breakdown[:-1], tower, est.breakdown[-1]) if extra_peak else est.breakdown
    assumptions = (
        *est.assumptions,
        f"{n_img} image(s) per prompt at {vis.width}×{vis.height} → {toks:,} tokens each "
        f"({patches:,} patches merged 2×2); prompt = {wl.context:,} text + {n_img * toks:,} image tokens",
        "the vision tower runs before prefill: its peak counts only where it exceeds the language model's prefill peak",
    )
    return replace(
        est,
        model=rm.entry.id,
        workload=wl,
        breakdown=breakdown,
        assumptions=assumptions,
        peak_allocated_bytes=est.peak_allocated_bytes + extra_peak,
        total_bytes=est.total_bytes + extra_peak,
        extra={
            "family": {
                "kind": "vlm",
                "image_tokens": toks,
                "image_patches": patches,
                "vision_params": rm.spec.extra_params,
                "vision_peak_bytes": vision_peak,
            }
        },
    )
