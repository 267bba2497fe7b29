"""Whisper (speech to text): an audio encoder over 30-second windows and a text decoder with a KV cache.

Parameters, as transformers' WhisperForConditionalGeneration builds them (proj_out is tied to the token embedding):

* encoder: conv1 (n_mels → d, kernel 3) + conv2 (d → d, kernel 3, stride 2), sinusoidal positions 1500 × d, per
  layer self-attention (q, v, out with bias; k without: 4d² + 3d), two LayerNorms (4d), fc1/fc2 (2·d·ffn + ffn + d),
  final LayerNorm (2d);
* decoder: token embedding vocab × d, learned positions 448 × d, per layer self- and cross-attention
  (2 × (4d² + 3d)), three LayerNorms (6d), fc1/fc2, final LayerNorm.

Memory of `generate()` for a batch of 30-s windows (3000 mel frames → 1500 encoder positions):

* the encoder pass: mel features, conv outputs, and per layer the hidden state, its normed copy and either q/k/v
  plus the attention output (4 × d) or fc1's output and its GELU (2 × ffn); SDPA keeps no score matrix;
* decoding: encoder states expanded for the beams, the cross-attention cache (keys and values of the 1500 encoder
  positions in every decoder layer, computed once) and the self-attention cache, sized here for the decoder's
  full 448-token window, plus float32 logits for the beam scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..components import Component
from ..errors import ConfigError
from ..request import SpeechOptions
from . import opaque_spec
from ._common import elem_bytes, finish

if TYPE_CHECKING:
    from ..model import ModelSpec
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate

AUDIO_FRAMES = 3000  # mel frames in a 30 s window (10 ms hop)


def _i(cfg: Mapping[str, Any], key: str) -> int:
    v = cfg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ConfigError(f"whisper config is missing {key}", field="model")
    return v


def whisper_params(cfg: Mapping[str, Any]) -> dict[str, int]:
    d = _i(cfg, "d_model")
    mels = _i(cfg, "num_mel_bins")
    src = _i(cfg, "max_source_positions")
    tgt = _i(cfg, "max_target_positions")
    vocab = _i(cfg, "vocab_size")
    ef, df = _i(cfg, "encoder_ffn_dim"), _i(cfg, "decoder_ffn_dim")
    attn = 4 * d * d + 3 * d
    enc_layer = attn + 2 * d + (d * ef + ef) + (ef * d + d) + 2 * d
    dec_layer = 2 * attn + 2 * 2 * d + (d * df + df) + (df * d + d) + 2 * d
    encoder = (mels * d * 3 + d) + (d * d * 3 + d) + src * d + _i(cfg, "encoder_layers") * enc_layer + 2 * d
    decoder = vocab * d + tgt * d + _i(cfg, "decoder_layers") * dec_layer + 2 * d
    return {"encoder": encoder, "decoder": decoder, "total": encoder + decoder}


def whisper_spec(cfg: Mapping[str, Any], name: str) -> ModelSpec:
    p = whisper_params(cfg)
    return opaque_spec(name, "whisper", p["total"], f"Whisper encoder {p['encoder']:,} + decoder {p['decoder']:,}")


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    assert rm.entry is not None
    sp = wl.family_options(SpeechOptions)
    cfg = rm.entry.config
    p = whisper_params(cfg)
    e = elem_bytes(wl)
    d = _i(cfg, "d_model")
    b = wl.batch
    beams = max(1, sp.beams)
    n = b * beams
    src = _i(cfg, "max_source_positions")
    tgt = _i(cfg, "max_target_positions")
    dec_layers = _i(cfg, "decoder_layers")
    ef = _i(cfg, "encoder_ffn_dim")
    vocab = _i(cfg, "vocab_size")
    mels = _i(cfg, "num_mel_bins")

    weights = Component(
        "weights",
        p["total"] * e,
        f"{p['total']:,} parameters × {e} bytes ({wl.dtype}); "
        f"encoder {p['encoder']:,}, decoder {p['decoder']:,}; output projection tied",
    )
    cross = 2 * dec_layers * n * src * d * e
    self_kv = 2 * dec_layers * n * tgt * d * e
    kv = Component(
        "kv_cache",
        cross + self_kv,
        f"cross-attention 2 × {dec_layers} layers × {src} positions × {d} × {n} sequences "
        f"({cross:,} B) + self-attention for the full {tgt}-token window ({self_kv:,} B)",
    )
    features = b * mels * AUDIO_FRAMES * e
    conv = b * d * (AUDIO_FRAMES + src) * e
    layer = b * src * (2 * d + max(4 * d, 2 * ef)) * e
    encoder_phase = features + max(conv, layer)
    enc_out = (b + (n if beams > 1 else 0)) * src * d * e
    logits = n * vocab * (e + 4 + 4)
    decode_phase = enc_out + logits + n * 8 * d * e
    # the cache exists only while decoding, so the encoder phase competes with cache + decoding temporaries
    if encoder_phase > cross + self_kv + decode_phase:
        acts = Component(
            "activations",
            encoder_phase,
            f"encoder pass over {b} × 30 s windows: mel features, conv "
            f"outputs, one layer's hidden states and fc1 ({ef}) activations",
        )
        kv_c: Component | None = None
        phase = "encoder"
        others: list[Component] = []
    else:
        acts = Component(
            "activations",
            decode_phase,
            f"decoding: encoder states ({b} windows"
            + (f", expanded to {n} beams" if beams > 1 else "")
            + "), float32 logits and scores",
        )
        kv_c = kv
        phase = "decode"
        others = []
    assumptions = [
        "engine: PyTorch + transformers WhisperForConditionalGeneration.generate(), SDPA attention",
        f"{b} audio window(s) of 30 s (3000 mel frames → {src} encoder positions), beam size {beams}",
        f"weights and activations in {wl.dtype}",
        f"decoder self-attention cache sized for the full {tgt}-token window (the worst case of one window)",
        "cross-attention keys/values of every decoder layer are cached once per sequence and beam",
        "peak is the larger of the encoder pass and decoding (the cache does not exist during the encoder pass)",
    ]
    return finish(
        model=rm.entry.id,
        params=p["total"],
        wl=wl,
        weights=weights,
        kv=kv_c,
        activations=acts,
        others=others,
        assumptions=assumptions,
        phase=phase,
        extra={
            "family": {
                "kind": "speech",
                "encoder_params": p["encoder"],
                "decoder_params": p["decoder"],
                "cross_kv_bytes": cross,
                "self_kv_bytes": self_kv,
                "encoder_phase_bytes": encoder_phase,
            }
        },
    )
