"""Diffusion pipelines (diffusers): a denoising transformer, its text encoders and a VAE.

Parameter counts are computed module by module from each component's config, the way diffusers / transformers
build them:

* FluxTransformer2DModel: time (+ guidance) and pooled-text embedders, context and latent projections, `num_layers`
  double-stream blocks (AdaLN-Zero for image and text streams, joint attention with q/k RMSNorm, two GELU MLPs of
  4 × width) and `num_single_layers` single-stream blocks (AdaLN-Zero-single, q/k/v, fused MLP-in and
  attention+MLP-out projection), AdaLN-continuous output norm and the output projection;
* T5 encoder (T5EncoderModel): shared embedding, per layer q/k/v/o without bias, gated-GELU FFN, two RMS norms;
  relative position bias in the first layer;
* CLIP text model: token + position embeddings, per layer q/k/v/o with bias, two LayerNorms, fc1/fc2; final
  LayerNorm; optional text projection;
* AutoencoderKL: encoder and decoder of ResNet blocks, one mid-block self-attention each, optional quant convs.

Memory (diffusers pipeline, one GPU, no CPU offload unless asked): all components' weights, then the larger of
the text-encoding pass and the denoising step (the transformer over image + text tokens: the residual streams,
one block's q/k/v/attention output and its 4 × width MLP activations; SDPA keeps no score matrix), and the VAE
decode of the final latents at full resolution (ResNet blocks of the highest-resolution level, whose
activations are a few full-size copies of a `block_out_channels[0]`-channel image).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..components import Component
from ..errors import BadInput, ConfigError
from . import opaque_spec
from ._common import elem_bytes, finish

if TYPE_CHECKING:
    from ..catalog import ModelEntry
    from ..estimate import Estimate, ResolvedModel, Workload
    from ..model import ModelSpec

Cfg = Mapping[str, Any]
MAX_PIXELS = 8192 * 8192


def _i(cfg: Cfg, key: str, default: int | None = None) -> int:
    v = cfg.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ConfigError(f"diffusion config is missing {key}", field="model")
    return v


def _lin(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + (n_out if bias else 0)


def flux_transformer_params(c: Cfg) -> int:
    d = _i(c, "num_attention_heads") * _i(c, "attention_head_dim")
    hd = _i(c, "attention_head_dim")
    time = _lin(256, d) + _lin(d, d)
    guidance = time if c.get("guidance_embeds") else 0
    text = _lin(_i(c, "pooled_projection_dim"), d) + _lin(d, d)
    ctx = _lin(_i(c, "joint_attention_dim"), d)
    x = _lin(_i(c, "in_channels"), d)
    mlp = _lin(d, 4 * d) + _lin(4 * d, d)
    double = 2 * _lin(d, 6 * d) + 8 * _lin(d, d) + 4 * hd + 2 * mlp
    single = _lin(d, 3 * d) + _lin(d, 4 * d) + _lin(5 * d, d) + 3 * _lin(d, d) + 2 * hd
    out_ch = c.get("out_channels") or _i(c, "in_channels")
    patch = _i(c, "patch_size", 1)
    out = _lin(d, 2 * d) + _lin(d, patch * patch * int(out_ch))
    return time + guidance + text + ctx + x + _i(c, "num_layers") * double + _i(c, "num_single_layers") * single + out


def t5_encoder_params(c: Cfg) -> int:
    d, ff, kv = _i(c, "d_model"), _i(c, "d_ff"), _i(c, "d_kv")
    heads, n = _i(c, "num_heads"), _i(c, "num_layers")
    gated = str(c.get("feed_forward_proj", "relu")).startswith("gated")
    inner = heads * kv
    layer = 4 * d * inner + (3 if gated else 2) * d * ff + 2 * d
    return _i(c, "vocab_size") * d + n * layer + _i(c, "relative_attention_num_buckets", 32) * heads + d


def clip_text_params(c: Cfg) -> int:
    d, inter, n = _i(c, "hidden_size"), _i(c, "intermediate_size"), _i(c, "num_hidden_layers")
    layer = 4 * _lin(d, d) + 4 * d + _lin(d, inter) + _lin(inter, d)
    proj = d * _i(c, "projection_dim") if c.get("with_projection") else 0
    return _i(c, "vocab_size") * d + _i(c, "max_position_embeddings") * d + n * layer + 2 * d + proj


def _resnet(cin: int, cout: int) -> int:
    return 2 * cin + (cin * cout * 9 + cout) + 2 * cout + (cout * cout * 9 + cout) + (
        cin * cout + cout if cin != cout else 0)


def _mid(c: int) -> int:
    return 2 * _resnet(c, c) + 2 * c + 4 * _lin(c, c)


def vae_params(cfg: Cfg) -> int:
    ch = [int(x) for x in cfg.get("block_out_channels") or []]
    if not ch:
        raise ConfigError("VAE config is missing block_out_channels", field="model")
    lpb = _i(cfg, "layers_per_block")
    lat = _i(cfg, "latent_channels")
    cin, cout = _i(cfg, "in_channels", 3), _i(cfg, "out_channels", 3)
    enc = cin * ch[0] * 9 + ch[0]
    prev = ch[0]
    for i, c in enumerate(ch):
        for j in range(lpb):
            enc += _resnet(prev if j == 0 else c, c)
        prev = c
        if i < len(ch) - 1:
            enc += c * c * 9 + c
    enc += _mid(ch[-1]) + 2 * ch[-1] + ch[-1] * 2 * lat * 9 + 2 * lat
    rev = list(reversed(ch))
    dec = lat * rev[0] * 9 + rev[0] + _mid(rev[0])
    prev = rev[0]
    for i, c in enumerate(rev):
        for j in range(lpb + 1):
            dec += _resnet(prev if j == 0 else c, c)
        prev = c
        if i < len(rev) - 1:
            dec += c * c * 9 + c
    dec += 2 * ch[0] + ch[0] * cout * 9 + cout
    quant = 0
    if cfg.get("use_quant_conv", True):
        quant += _lin(2 * lat, 2 * lat)
    if cfg.get("use_post_quant_conv", True):
        quant += _lin(lat, lat)
    return enc + dec + quant


COMPONENT_PARAMS = {"flux_transformer": flux_transformer_params, "t5_encoder": t5_encoder_params,
                    "clip_text": clip_text_params, "vae": vae_params}


def component_params(entry_config: Cfg) -> dict[str, int]:
    comps = entry_config.get("components")
    if not isinstance(comps, Mapping) or not comps:
        raise ConfigError("diffusion entry has no components", field="model")
    out = {}
    for name, c in comps.items():
        kind = str(c.get("type"))
        if kind not in COMPONENT_PARAMS:
            raise ConfigError(f"diffusion component {name}: unknown type {kind!r}", field="model")
        out[str(name)] = COMPONENT_PARAMS[kind](c)
    return out


def pipeline_spec(entry: ModelEntry) -> ModelSpec:
    p = component_params(entry.config)
    main = str(entry.config.get("denoiser", "transformer"))
    parts = ", ".join(f"{k} {v:,}" for k, v in p.items())
    return opaque_spec(entry.id, "diffusion", p[main], f"denoiser only; pipeline: {parts}",
                       notes=(f"pipeline components: {parts}",))


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    assert rm.entry is not None
    cfg = rm.entry.config
    comps: Mapping[str, Any] = cfg["components"]
    p = component_params(cfg)
    e = elem_bytes(wl)
    main = str(cfg.get("denoiser", "transformer"))
    tc = comps[main]
    vae_c = comps["vae"]
    if wl.width % 16 or wl.height % 16 or wl.width * wl.height > MAX_PIXELS:
        raise BadInput("width/height: multiples of 16 up to 8192 × 8192 pixels", field="width")
    imgs = wl.batch * max(1, wl.images)
    vae_scale = 2 ** (len(vae_c["block_out_channels"]) - 1)
    patch = int(cfg.get("latent_patch", 2))
    img_tokens = (wl.height // (vae_scale * patch)) * (wl.width // (vae_scale * patch))
    txt_tokens = int(cfg.get("max_sequence_length", 512))
    seq = img_tokens + txt_tokens
    d = _i(tc, "num_attention_heads") * _i(tc, "attention_head_dim")
    cfg_scale = 2 if cfg.get("classifier_free_guidance") else 1
    rows = imgs * cfg_scale

    encoders = [k for k in p if k not in (main, "vae")]
    enc_bytes = sum(p[k] for k in encoders) * e
    resident = p[main] + p["vae"] + (0 if wl.offload_text_encoders else sum(p[k] for k in encoders))
    weights = Component("weights", resident * e, f"{main} {p[main]:,} + vae {p['vae']:,}" + (
        "" if wl.offload_text_encoders else " + " + " + ".join(f"{k} {p[k]:,}" for k in encoders))
        + f" parameters × {e} bytes ({wl.dtype})" + (
        "; text encoders offloaded to the CPU (moved in only to encode the prompt)" if wl.offload_text_encoders
        else ""))
    # denoising step: residual streams (image + text) in and out, one block's q/k/v/attn out and the MLP (4d) with
    # its GELU input; float32 rotary tables per token.
    denoise = rows * (seq * d * e * (2 + 2 + 4) + seq * 4 * d * e * 2 + seq * 128 * 2 * 4)
    c0 = int(vae_c["block_out_channels"][0])
    decode = imgs * wl.height * wl.width * c0 * e * 5 + imgs * wl.height * wl.width * 3 * 4
    t5 = next((comps[k] for k in encoders if comps[k].get("type") == "t5_encoder"), None)
    encode = 0
    if t5 is not None:
        encode = wl.batch * txt_tokens * (4 * _i(t5, "d_model") + 3 * _i(t5, "d_ff")) * e
    offload_swap = enc_bytes if wl.offload_text_encoders else 0
    phases = {"denoising step": denoise, "VAE decode": decode, "text encoding": encode + offload_swap}
    phase = max(phases, key=lambda k: phases[k])
    acts = Component("activations", phases[phase],
                     f"{phase} binds: denoiser over {img_tokens:,} image + {txt_tokens} text tokens × {rows} rows "
                     f"({phases['denoising step']:,} B); VAE decode of {imgs} image(s) at {wl.width}×{wl.height} "
                     f"({phases['VAE decode']:,} B); text encoding ({phases['text encoding']:,} B"
                     + (", encoders moved in" if wl.offload_text_encoders else "") + ")")
    latents = Component("latents", rows * img_tokens * patch * patch * int(vae_c["latent_channels"]) * 4 * 2,
                        "float32 latents and the scheduler's copy")
    prompt = Component("prompt_embeddings", rows * (txt_tokens * _i(tc, "joint_attention_dim") + 4096) * e,
                       f"encoded prompt: {txt_tokens} text-encoder states + pooled embedding per image")
    assumptions = [
        f"engine: PyTorch + diffusers {cfg.get('pipeline', 'pipeline')}, SDPA attention, {wl.dtype} weights",
        f"{imgs} image(s) at {wl.width}×{wl.height}: latents {wl.width // vae_scale}×{wl.height // vae_scale} "
        f"(VAE ×{vae_scale}), {img_tokens:,} image tokens after {patch}×{patch} patching, {txt_tokens} text tokens",
        "classifier-free guidance doubles the denoiser batch" if cfg_scale == 2 else
        "no classifier-free guidance batch (guidance-distilled model)",
        "text encoders offloaded (diffusers enable_model_cpu_offload): each is on the GPU only for its own pass"
        if wl.offload_text_encoders else "all components resident on the GPU (pipe.to('cuda'))",
        "VAE decode without tiling or slicing: the highest-resolution ResNet level holds ~5 copies of a "
        f"{c0}-channel full-size image (structural estimate, not yet checked against a measurement)",
        f"--steps does not change peak memory (each step frees its temporaries); published denoiser size "
        f"{rm.entry.published_params_text or p[main]}",
    ]
    return finish(model=rm.entry.id, params=p[main], wl=wl, weights=weights, kv=None, activations=acts,
                  others=[latents, prompt], assumptions=assumptions, phase=phase,
                  extra={"family": {"kind": "diffusion", "components": p, "image_tokens": img_tokens,
                                    "text_tokens": txt_tokens, "pipeline_params": sum(p.values())}})
