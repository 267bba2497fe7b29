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
from ..request import ImageOptions
from . import opaque_spec
from ._common import elem_bytes, finish

if TYPE_CHECKING:
    from ..catalog import ModelEntry
    from ..model import ModelSpec
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate

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


def sd3_transformer_params(c: Cfg) -> int:
    """SD3Transformer2DModel (SD3 / SD3.5): MMDiT joint blocks; the last block's context stream is output-only
    (AdaLN-continuous norm, no context FFN or output projection); `dual_attention_layers` add a second image-only
    attention and a 9 × width AdaLN (SD3.5 Medium's MMDiT-X)."""
    hd = _i(c, "attention_head_dim")
    d = _i(c, "num_attention_heads") * hd
    p = _i(c, "patch_size")
    n = _i(c, "num_layers")
    qk = 2 * hd if c.get("qk_norm") else 0
    dual = {int(x) for x in c.get("dual_attention_layers") or []}
    total = _i(c, "in_channels") * d * p * p + d  # patch embedding conv; the position table is a buffer
    total += _lin(256, d) + _lin(d, d) + _lin(_i(c, "pooled_projection_dim"), d) + _lin(d, d)
    total += _lin(_i(c, "joint_attention_dim"), _i(c, "caption_projection_dim"))
    mlp = _lin(d, 4 * d) + _lin(4 * d, d)
    for i in range(n):
        last = i == n - 1
        block = _lin(d, (9 if i in dual else 6) * d)  # norm1
        block += _lin(d, 2 * d) if last else _lin(d, 6 * d)  # norm1_context
        block += 3 * _lin(d, d) + 3 * _lin(d, d) + 2 * qk + _lin(d, d) + (0 if last else _lin(d, d))
        if i in dual:
            block += 4 * _lin(d, d) + qk
        block += mlp + (0 if last else mlp)
        total += block
    out_ch = c.get("out_channels") or _i(c, "in_channels")
    return total + _lin(d, 2 * d) + _lin(d, p * p * int(out_ch))


def _unet_resnet(cin: int, cout: int, temb: int) -> int:
    return _resnet(cin, cout) + _lin(temb, cout)


def _spatial_transformer(c: int, layers: int, cross: int) -> int:
    """Transformer2DModel with linear projections: GroupNorm, proj_in/out, and `layers` blocks of self-attention,
    cross-attention (k/v from the text states) and a GEGLU feed-forward (inner 4c)."""
    block = (
        3 * 2 * c + (3 * c * c + _lin(c, c)) + (c * c + 2 * cross * c + _lin(c, c)) + _lin(c, 8 * c) + _lin(4 * c, c)
    )
    return 2 * c + 2 * _lin(c, c) + layers * block


def unet_params(c: Cfg) -> int:
    """UNet2DConditionModel (SDXL layout): conv_in, time and text-time embeddings, down blocks (ResNets, spatial
    transformers where the block type has cross-attention, strided-conv downsamplers), a cross-attention mid block,
    up blocks with skip concatenations and (layers_per_block + 1) ResNets, and the output norm and conv."""
    ch = [int(x) for x in c["block_out_channels"]]
    lpb = _i(c, "layers_per_block")
    tl = [int(x) for x in c["transformer_layers_per_block"]]
    down_types = [str(x) for x in c["down_block_types"]]
    up_types = [str(x) for x in c["up_block_types"]]
    cross = _i(c, "cross_attention_dim")
    temb = 4 * ch[0]
    total = _i(c, "in_channels") * ch[0] * 9 + ch[0] + _lin(ch[0], temb) + _lin(temb, temb)
    if c.get("addition_embed_type") == "text_time":
        total += _lin(_i(c, "projection_class_embeddings_input_dim"), temb) + _lin(temb, temb)
    prev = ch[0]
    for i, out in enumerate(ch):
        for j in range(lpb):
            total += _unet_resnet(prev if j == 0 else out, out, temb)
            if "CrossAttn" in down_types[i]:
                total += _spatial_transformer(out, tl[i], cross)
        prev = out
        if i < len(ch) - 1:
            total += out * out * 9 + out
    total += 2 * _unet_resnet(ch[-1], ch[-1], temb) + _spatial_transformer(ch[-1], tl[-1], cross)
    rev, rev_tl = list(reversed(ch)), list(reversed(tl))
    prev_out = rev[0]
    for i, out in enumerate(rev):
        inp = rev[min(i + 1, len(rev) - 1)]
        for j in range(lpb + 1):
            skip = inp if j == lpb else out
            total += _unet_resnet((prev_out if j == 0 else out) + skip, out, temb)
            if "CrossAttn" in up_types[i]:
                total += _spatial_transformer(out, rev_tl[i], cross)
        prev_out = out
        if i < len(rev) - 1:
            total += out * out * 9 + out
    return total + 2 * ch[0] + ch[0] * _i(c, "out_channels") * 9 + _i(c, "out_channels")


def unet_step_bytes(c: Cfg, lat_h: int, lat_w: int, e: int) -> int:
    """One UNet forward per image: the skip activations kept for the up path, plus the largest level's working set
    (a ResNet over the concatenated skip input: input, GroupNorm output, SiLU, conv output; or a spatial
    transformer block: hidden, normed, q/k/v, attention output and the GEGLU's 8c projection)."""
    ch = [int(x) for x in c["block_out_channels"]]
    lpb = _i(c, "layers_per_block")
    skips = ch[0] * lat_h * lat_w
    work = 0
    h, w = lat_h, lat_w
    for i, out in enumerate(ch):
        pos = h * w
        skips += lpb * out * pos
        concat = (out + (ch[i - 1] if i else ch[0])) * pos
        work = max(work, concat + 4 * out * pos)
        if "CrossAttn" in str(c["down_block_types"][i]):
            work = max(work, pos * out * (2 + 4 + 8))
        if i < len(ch) - 1:
            h, w = (h + 1) // 2, (w + 1) // 2
            skips += out * h * w
    return (skips + work) * e


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
    return (
        2 * cin
        + (cin * cout * 9 + cout)
        + 2 * cout
        + (cout * cout * 9 + cout)
        + (cin * cout + cout if cin != cout else 0)
    )


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


COMPONENT_PARAMS = {
    "flux_transformer": flux_transformer_params,
    "sd3_transformer": sd3_transformer_params,
    "unet": unet_params,
    "t5_encoder": t5_encoder_params,
    "clip_text": clip_text_params,
    "vae": vae_params,
}


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


def component_buffer_elems(c: Cfg) -> int:
    """Persistent buffers stored with the weights: SD3's position-embedding table (pos_embed_max_size² × width)."""
    if c.get("type") == "sd3_transformer" and c.get("pos_embed_max_size"):
        return int(c["pos_embed_max_size"]) ** 2 * _i(c, "num_attention_heads") * _i(c, "attention_head_dim")
    return 0


def pipeline_spec(entry: ModelEntry) -> ModelSpec:
    p = component_params(entry.config)
    main = str(entry.config.get("denoiser", "transformer"))
    parts = ", ".join(f"{k} {v:,}" for k, v in p.items())
    return opaque_spec(
        entry.id, "diffusion", p[main], f"denoiser only; pipeline: {parts}", notes=(f"pipeline components: {parts}",)
    )


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    assert rm.entry is not None
    img = wl.family_options(ImageOptions)
    cfg = rm.entry.config
    comps: Mapping[str, Any] = cfg["components"]
    p = component_params(cfg)
    e = elem_bytes(wl)
    main = str(cfg.get("denoiser", "transformer"))
    tc = comps[main]
    vae_c = comps["vae"]
    if img.width % 16 or img.height % 16 or img.width * img.height > MAX_PIXELS:
        raise BadInput("width/height: multiples of 16 up to 8192 × 8192 pixels", field="width")
    imgs = wl.batch * max(1, img.images)
    vae_scale = 2 ** (len(vae_c["block_out_channels"]) - 1)
    is_unet = tc.get("type") == "unet"
    patch = 1 if is_unet else int(cfg.get("latent_patch", 2))
    lat_h, lat_w = img.height // vae_scale, img.width // vae_scale
    img_tokens = (lat_h // patch) * (lat_w // patch)
    txt_tokens = int(cfg.get("max_sequence_length", 512)) + int(cfg.get("clip_tokens", 0))
    seq = img_tokens + txt_tokens
    ctx_dim = _i(tc, "cross_attention_dim") if is_unet else _i(tc, "joint_attention_dim")
    cfg_scale = 2 if cfg.get("classifier_free_guidance") else 1
    rows = imgs * cfg_scale

    encoders = [k for k in p if k not in (main, "vae")]
    enc_bytes = sum(p[k] for k in encoders) * e
    resident = p[main] + p["vae"] + (0 if img.offload_text_encoders else sum(p[k] for k in encoders))
    buffers = component_buffer_elems(tc)
    weights = Component(
        "weights",
        (resident + buffers) * e,
        f"{main} {p[main]:,} + vae {p['vae']:,}"
        + ("" if img.offload_text_encoders else " + " + " + ".join(f"{k} {p[k]:,}" for k in encoders))
        + f" parameters × {e} bytes ({wl.dtype})"
        + (f"; + {buffers:,}-value position table stored with the weights" if buffers else "")
        + (f"; text encoders ({enc_bytes:,} bytes) kept off the GPU" if img.offload_text_encoders else ""),
    )
    # denoising step: residual streams (image + text) in and out, one block's q/k/v/attn out and the MLP (4d) with
    # its GELU input; float32 rotary tables per token.
    if is_unet:
        denoise = rows * unet_step_bytes(tc, lat_h, lat_w, e)
    else:
        d = _i(tc, "num_attention_heads") * _i(tc, "attention_head_dim")
        denoise = rows * (seq * d * e * (2 + 2 + 4) + seq * 4 * d * e * 2 + seq * 128 * 2 * 4)
    c0 = int(vae_c["block_out_channels"][0])
    vae_e = 4 if vae_c.get("force_upcast") else e  # SDXL's VAE decodes in float32
    decode = (
        imgs * img.height * img.width * c0 * vae_e * 5
        + imgs * img.height * img.width * 3 * 4
        + (p["vae"] * (4 - e) if vae_c.get("force_upcast") else 0)
    )
    t5 = next((comps[k] for k in encoders if comps[k].get("type") == "t5_encoder"), None)
    encode = 0
    if t5 is not None:
        encode = wl.batch * txt_tokens * (4 * _i(t5, "d_model") + 3 * _i(t5, "d_ff")) * e
    if img.offload_text_encoders:
        encode = 0  # the prompt is encoded off the GPU
    phases = {"denoising step": denoise, "VAE decode": decode, "text encoding": encode}
    phase = max(phases, key=lambda k: phases[k])
    acts = Component(
        "activations",
        phases[phase],
        f"{phase} binds: denoiser over {img_tokens:,} image + {txt_tokens} text tokens × {rows} rows "
        f"({phases['denoising step']:,} B); VAE decode of {imgs} image(s) at {img.width}×{img.height} "
        f"({phases['VAE decode']:,} B); text encoding ({phases['text encoding']:,} B"
        + (", on the CPU" if img.offload_text_encoders else "")
        + ")",
    )
    latents = Component(
        "latents",
        rows * img_tokens * patch * patch * int(vae_c["latent_channels"]) * 4 * 2,
        "float32 latents and the scheduler's copy",
    )
    prompt = Component(
        "prompt_embeddings",
        rows * (txt_tokens * ctx_dim + 4096) * e,
        f"encoded prompt: {txt_tokens} text-encoder states + pooled embedding per image",
    )
    assumptions = [
        f"engine: PyTorch + diffusers {cfg.get('pipeline', 'pipeline')}, SDPA attention, {wl.dtype} weights",
        f"{imgs} image(s) at {img.width}×{img.height}: latents {img.width // vae_scale}×{img.height // vae_scale} "
        f"(VAE ×{vae_scale}), {img_tokens:,} latent positions"
        + (f" after {patch}×{patch} patching" if patch > 1 else "")
        + f", {txt_tokens} text tokens",
        "classifier-free guidance doubles the denoiser batch"
        if cfg_scale == 2
        else "no classifier-free guidance batch (guidance-distilled model)",
        "text encoders off the GPU: the prompt is encoded on the CPU, or before the denoiser is loaded and the "
        "encoders freed (diffusers' enable_model_cpu_offload instead moves every model in turn: its peak is the "
        "largest single model plus its pass)"
        if img.offload_text_encoders
        else "all components resident on the GPU (pipe.to('cuda'))",
        "VAE decode without tiling or slicing: the highest-resolution ResNet level holds ~5 copies of a "
        f"{c0}-channel full-size image (structural estimate, not yet checked against a measurement)"
        + ("; the VAE is upcast to float32 for decoding (force_upcast)" if vae_c.get("force_upcast") else ""),
        f"--steps does not change peak memory (each step frees its temporaries); published denoiser size "
        f"{rm.entry.published_params_text or p[main]}",
    ]
    return finish(
        model=rm.entry.id,
        params=p[main],
        wl=wl,
        weights=weights,
        kv=None,
        activations=acts,
        others=[latents, prompt],
        assumptions=assumptions,
        phase=phase,
        extra={
            "family": {
                "kind": "diffusion",
                "components": p,
                "image_tokens": img_tokens,
                "text_tokens": txt_tokens,
                "pipeline_params": sum(p.values()),
            }
        },
    )
