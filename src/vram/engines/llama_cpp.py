"""llama.cpp: the buffers `llama_model_load` and `llama_init_from_model` allocate, per device, as its code does.

Read at the Oct 2026 tree (vendored by llama-cpp-python 0.3.36); the file/function of each rule is named.

* **Tensors.** From a GGUF file its own; for a catalog model + `--quant` the tensors llama-quantize writes
  (`gguf_plan.py`).
* **Placement** (src/llama-model.cpp, `load_tensors`): `i_gpu_start = max(n_layer + 1 - ngl, 0)`,
  `act_gpu_layers = min(ngl, n_layer + 1)`; block il (and the output layer as il = n_layer) is on a GPU when
  `i_gpu_start <= il < i_gpu_start + act_gpu_layers`, so `-ngl N` puts the output layer and the last N-1 blocks on
  the GPU (builds before OUTPUT_FIRST_BUILD: `i_gpu_start = max(n_layer - ngl, 0)`, the last N blocks). Several
  GPUs: the device is `upper_bound(splits, (il - i_gpu_start) / act_gpu_layers)` over the cumulative, normalised
  `--tensor-split` (default: each device's free memory). The input layer (token_embd) always stays on the CPU;
  with tied embeddings the output layer gets its own copy of token_embd. Tensor overrides
  (common/arg.cpp): `--cpu-moe` keeps every tensor matching `\\.ffn_(up|down|gate|gate_up)_(ch|)exps` on the CPU,
  `--n-cpu-moe N` those of blocks 0..N-1. GPU buffers (ggml-cuda.cu `get_alloc_size`): a quantized tensor whose row
  is not a multiple of 512 gets one padded row; every tensor is aligned to 128 bytes.
* **KV cache** (src/llama-context.cpp, src/llama-kv-cache.cpp): `n_ctx = pad(context × slots, 256)`; unified: one
  stream of n_ctx cells; otherwise one stream per slot of `n_ctx_seq = pad(n_ctx / slots, 256)` cells. Per layer
  K `[n_embd_k_gqa, cells, streams]` in type_k and V likewise (MLA: the latent K only), on the layer's device.
  Sliding-window layers (src/llama-kv-cache-iswa.cpp): `pad(min(cells, n_swa × (unified ? slots : 1) + n_ubatch),
  256)` cells per stream.
* **Compute buffers** (ggml-alloc, ggml-backend.cpp `ggml_backend_sched`): the worst-case graph of n_ubatch tokens
  attending to every cell, each token producing logits. Its size on a device is the largest set of f32 tensors
  alive at one point: the output (logits + the hidden state before/after the norm), a feed-forward (gate, up,
  product; top-k experts for MoE) or attention (q/k/v, and without flash attention the n_kv × n_ubatch × n_head
  score matrix), plus the KQ mask alive through every layer (f16 with flash attention, f32 without; one per cache
  kind). Graph inputs (token embeddings looked up on the CPU, positions, the mask) live in the host compute buffer.
  **Op offload**: a CUDA/ROCm/Vulkan build runs every op of n_ubatch >= 32 rows on GPU 0 even when its weight sits
  in host memory (`ggml_backend_sched_backend_id_from_cur`, `offload_op`), copying that weight into the GPU compute
  buffer for the op; so a CPU-resident layer's largest matrix (or the output matrix, or a CPU-resident layer's K/V
  view) adds to GPU 0's compute buffer, and `-ngl 0` still reserves one. Pipeline parallelism (several GPUs, all
  layers offloaded, no overrides) keeps 4 copies of each device's graph inputs.
  **Placement**: with the whole graph on one CUDA / ROCm / Vulkan GPU and a llama-like decoder (REPLAYED_TYPES),
  the buffer is ggml-alloc's replayed over the graph (ggml_alloc.py): the highest offset any tensor reached, holes
  included, which the largest live set only bounds from below. Builds before F16_MASK_BUILD copy an f32 KQ mask to
  the GPU and cast it there; the freed copy is a hole at the bottom the logits may not fit. Without --llama-build
  that layout (the larger one) is assumed.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from ..components import Component
from ..details import LlamaCppDetails, LlamaCppDevice
from ..errors import BadInput
from ..records import record
from .gguf_plan import MIX_BASE, Tensor, mix_name, plan_tensors

if TYPE_CHECKING:
    from ..model import ModelSpec
    from ..request import Workload
    from ..resolved import ResolvedModel
    from ..result import Estimate

KV_PAD = 256
MIB = 1024**2
BACKENDS = ("cuda", "rocm", "vulkan", "metal", "cpu")
OP_OFFLOAD_BACKENDS = ("cuda", "rocm", "vulkan")  # offload_op with a 32-row minimum batch
OP_OFFLOAD_MIN_BATCH = 32
GPU_ALIGN = 128
MATRIX_ROW_PADDING = 512  # ggml-cuda: quantized rows padded for the mmq kernels
SCHED_MAX_COPIES = 4
# the first release build whose graph uses ggml's fused GLU ops for gated feed-forwards (ggml-org/llama.cpp#14158,
# merged in the second half of June 2025; b5700 is of that week)
GLU_OP_BUILD = 5700
# the first build whose -ngl N puts the output layer on the GPU first (ggml-org/llama.cpp#18148, merged
# 2025-12-17; b7450 is of that week)
OUTPUT_FIRST_BUILD = 7450
# the first build whose graph makes the KQ mask f16 from the start when flash attention is on (ggml-org/llama.cpp
# PR #23764, merged 2026-05-27): earlier builds copy an f32 mask to the GPU and cast it there
F16_MASK_BUILD = 9410
# model types whose llama.cpp graph is the plain llama-like one ggml_alloc.decoder_graph rebuilds
REPLAYED_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# bytes per value of each cache type (ggml block size / bytes per block)
CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4),
    "f16": (1, 2),
    "bf16": (1, 2),
    "q8_0": (32, 34),
    "q4_0": (32, 18),
    "q4_1": (32, 20),
    "q5_0": (32, 22),
    "q5_1": (32, 24),
    "iq4_nl": (32, 18),
}
_FROM_KV_DTYPE = {
    "float16": "f16",
    "bfloat16": "bf16",
    "float32": "f32",
    "int8": "q8_0",
    "int4": "q4_0",
    "float8": "q8_0",
}
# llama.cpp's CUDA backend without PyTorch: driver context + cuBLAS handle. An assumed typical value (reports range
# ~250-400 MiB on recent GPUs); not part of the buffers llama.cpp logs.
LLAMA_CUDA_CONTEXT_BYTES = 300 * MIB


def pad(n: int, to: int = KV_PAD) -> int:
    return -(-n // to) * to


def cache_type(name: str | None, kv_dtype: str | None, which: str) -> str:
    """The llama.cpp cache type for --cache-type-k/-v (or the workload's kv dtype)."""
    if name:
        key = name.strip().lower()
        if key not in CACHE_TYPES:
            raise BadInput(
                f"cache_type_{which}: unknown llama.cpp cache type {name!r} (use {', '.join(CACHE_TYPES)})",
                field=f"cache_type_{which}",
            )
        return key
    if kv_dtype:
        return _FROM_KV_DTYPE.get(kv_dtype, "f16")
    return "f16"


def cache_row_bytes(type_name: str, n: int) -> int:
    block, size = CACHE_TYPES[type_name]
    return -(-n // block) * size


def device_memory(wl: Workload) -> tuple[int, ...] | None:
    """Memory of each GPU the workload runs on (what the driver reports), None when no GPU is given."""
    return tuple(d.memory_bytes for d in wl.devices) or None


def llama_backend(wl: Workload) -> str:
    """The build: --backend when given (checked against the GPUs), else the GPUs' own (CUDA, ROCm, Metal; Vulkan
    for a mix of vendors), CUDA when no GPU is named."""
    from ..devices import backend_for

    if wl.devices:
        return backend_for(list(wl.devices), wl.llama.backend)
    return wl.llama.backend or "cuda"


def validate_options(wl: Workload) -> None:
    """The llama.cpp rules that need the whole workload (ranges are checked by LlamaCppOptions itself): a weight
    format llama.cpp has, cache types it knows, a quantized V cache only with flash attention."""
    mix_name(wl.quant, wl.dtype)
    llama_backend(wl)
    tk = cache_type(wl.llama.cache_type_k, wl.kv_dtype, "k")
    tv = cache_type(wl.llama.cache_type_v, wl.kv_dtype, "v")
    del tk
    if tv not in ("f16", "bf16", "f32") and not wl.llama.flash_attn:
        raise BadInput(
            "cache_type_v: llama.cpp needs flash attention (-fa) for a quantized V cache", field="cache_type_v"
        )


@record(frozen=True)
class Layout:
    """Where llama.cpp puts each block: device index (0.. GPUs) or -1 for the CPU; `output` likewise."""

    n_layer: int
    n_gpu_layers: int
    layers: tuple[int, ...]
    output: int
    n_devices: int

    def on_gpu(self, il: int) -> bool:
        return self.layers[il] >= 0


def layout(
    n_layer: int, ngl: int | None, n_devices: int, split: tuple[float, ...] | None, output_first: bool = True
) -> Layout:
    """src/llama-model.cpp load_tensors: i_gpu_start, act_gpu_layers and the split points. Builds before
    OUTPUT_FIRST_BUILD started at `n_layer - ngl`, so the output layer only went to the GPU with ngl > n_layer."""
    if ngl is None or ngl < 0:
        ngl = n_layer + 1
    if n_devices == 0:
        ngl = 0
    i_gpu_start = max(n_layer + (1 if output_first else 0) - ngl, 0)
    act = min(ngl, n_layer + 1) if n_devices else 0
    w = list(split) if split else [1.0] * max(1, n_devices)
    total = sum(w)
    cum, acc = [], 0.0
    for x in w:
        acc += x
        cum.append(acc / total)

    def dev(il: int) -> int:
        if il < i_gpu_start or il - i_gpu_start >= act:
            return -1
        return min(bisect.bisect_right(cum, (il - i_gpu_start) / act), n_devices - 1)

    return Layout(n_layer, ngl, tuple(dev(i) for i in range(n_layer)), dev(n_layer), n_devices)


def _tensors(rm: ResolvedModel, wl: Workload) -> tuple[list[Tensor], str]:
    from ..sources.gguf import GgufWeights

    w = rm.weights_info
    if isinstance(w, GgufWeights) and wl.quant is None and w.tensors:
        return list(w.tensors), f"the GGUF file's {len(w.tensors)} tensors"
    mix = stored_mix(rm.spec, wl) or mix_name(wl.quant, wl.dtype)
    how = f"{mix} as llama-quantize writes it ({MIX_BASE[mix]} base mix)"
    if wl.quant is None and mix != mix_name(None, wl.dtype):
        how += "; the checkpoint's MXFP4 experts as convert_hf_to_gguf.py keeps them (--quant bf16 for a 16-bit file)"
    return plan_tensors(rm.spec, mix), how


def stored_mix(spec: ModelSpec, wl: Workload) -> str | None:
    """The GGUF type a conversion of the checkpoint as stored has, where it is not 16-bit: an MXFP4 checkpoint
    (gpt-oss) converts with its expert tensors still MXFP4 (convert_hf_to_gguf.py repacks them; ggml-org's published
    gpt-oss GGUFs are MXFP4_MOE). FP8 / INT4 checkpoints are dequantized by the converter, so 16-bit."""
    st = spec.stored_scheme
    if wl.quant is None and wl.dtype == "bfloat16" and st is not None and st.name.startswith("mxfp4"):
        return "MXFP4_MOE"
    return None


def _gpu_bytes(t: Tensor, backend: str) -> int:
    b = t.nbytes
    if backend in ("cuda", "rocm") and t.type_name not in ("F32", "F16", "BF16") and t.ne0 % MATRIX_ROW_PADDING:
        from ..dtypes import GGML_TYPES

        block, size = GGML_TYPES[t.type_name]
        b += (MATRIX_ROW_PADDING - t.ne0 % MATRIX_ROW_PADDING) // block * size
    return pad(b, GPU_ALIGN)


def _device_of(t: Tensor, lay: Layout, n_cpu_moe: int) -> int:
    if t.is_input:
        return -1
    il = t.layer
    if il is None:
        return lay.output
    if t.is_expert and il < n_cpu_moe:
        return -1
    return lay.layers[il] if il < lay.n_layer else lay.output


@record(frozen=True)
class Kv:
    n_ctx: int
    cells: int  # per stream, full-attention layers
    swa_cells: int  # per stream, sliding-window layers
    streams: int


def kv_geometry(spec: ModelSpec, context: int, slots: int, n_ubatch: int, unified: bool, swa_full: bool = False) -> Kv:
    n_ctx = pad(context * slots)
    if unified:
        cells, streams = n_ctx, 1
    else:
        cells, streams = pad(n_ctx // slots), slots
        n_ctx = cells * slots
    windows = [la.attention.sliding_window for la in spec.layers if la.attention and la.attention.sliding_window]
    swa = pad(min(cells, max(windows) * (slots if unified else 1) + n_ubatch)) if windows and not swa_full else cells
    return Kv(n_ctx, cells, swa, streams)


def kv_layer_bytes(spec: ModelSpec, i: int, kv: Kv, tk: str, tv: str) -> tuple[int, int]:
    """(K bytes, V bytes) of layer i's cache."""
    a = spec.layers[i].attention
    if a is None:
        return 0, 0
    cells = (kv.swa_cells if a.sliding_window else kv.cells) * kv.streams
    if a.kind == "mla":  # the latent (kv_lora_rank) + rope part as K; V is a view of it
        return cells * cache_row_bytes(tk, a.kv_lora_rank + a.rope_head_dim), 0
    return (
        cells * cache_row_bytes(tk, a.num_kv_heads * a.head_dim),
        cells * cache_row_bytes(tv, a.num_kv_heads * a.v_head_dim),
    )


def _ffn_act(spec: ModelSpec, il: int, n: int, glu_op: bool = True) -> int:
    """A dense feed-forward's working set. Builds with the fused GLU ops (GLU_OP_BUILD on) write the gated product
    to a tensor of its own beside gate and up (n × (3 ff + 4 h) f32; Qwen3-4B on CUDA, n_outputs 4: 85.01 MiB);
    earlier builds ran silu and the multiply in place on gate (n × (2 ff + 2 h)): OpenLLaMA 7B at n_ctx 512 logs
    70.50 MiB, its logits, which the 96.5 MiB of the fused graph's feed-forward would exceed."""
    h = spec.hidden_size
    m = spec.layers[il].mlp
    if m is None:
        return 0
    if m.kind == "moe":
        k = m.experts_per_token
        return (
            n
            * (
                k * 3 * m.intermediate_size
                + 2 * m.num_experts
                + 4 * h
                + (3 * m.shared_intermediate_size if m.shared_intermediate_size else 0)
            )
            * 4
        )
    if not glu_op:
        return n * (2 * m.intermediate_size + 2 * h) * 4
    return n * (3 * m.intermediate_size + 4 * h) * 4


def _att_act(spec: ModelSpec, il: int, n: int, kv: Kv, flash: bool, gpu: bool = False) -> int:
    """Attention's working set. Without flash attention on a GPU backend, measured CUDA logs (Mistral 7B at 2k and
    32k cells: 164.00 / 2144.00 MiB) hold the score matrix beside the residual, the normed input, q and its rope
    output (n × (2h + 2q) f32); the CPU graph (measured with a CPU build) keeps k/v and the merged output too."""
    h = spec.hidden_size
    a = spec.layers[il].attention
    if a is None:
        la = spec.layers[il]
        return n * (4 * h + 2 * (la.mixer.inner_size if la.mixer else h)) * 4
    q = a.num_heads * a.head_dim
    base = n * (2 * h + 2 * q + a.num_kv_heads * (a.head_dim + a.v_head_dim)) * 4
    if flash:
        return base + n * a.num_heads * a.v_head_dim * 4
    n_kv = kv.swa_cells if a.sliding_window else kv.cells
    if gpu:
        return n * n_kv * a.num_heads * 4 + n * (2 * h + 2 * q) * 4
    return base + n * n_kv * a.num_heads * 4 + n * q * 4


def _mask_bytes(spec: ModelSpec, n: int, kv: Kv, flash: bool, layers: list[int]) -> int:
    el = 2 if flash else 4
    full = any(spec.layers[i].attention and not spec.layers[i].attention.sliding_window for i in layers)  # type: ignore[union-attr]
    swa = any(spec.layers[i].attention and spec.layers[i].attention.sliding_window for i in layers)  # type: ignore[union-attr]
    return (kv.cells * full + kv.swa_cells * swa) * n * el


def replayed_buffer(
    spec: ModelSpec, n_ub: int, n_out: int, kv: Kv, flash: bool, f16_mask: bool, glu_op: bool
) -> int | None:
    """ggml-alloc's placement replayed over the whole graph on one GPU (ggml_alloc.py), for the llama-like
    decoders it rebuilds; None for other architectures."""
    from ..traits import traits_of
    from .ggml_alloc import decoder_buffer

    if spec.model_type not in REPLAYED_TYPES or not spec.layers:
        return None
    atts = {la.attention for la in spec.layers}
    mlps = {la.mlp for la in spec.layers}
    a, m = next(iter(atts)), next(iter(mlps))
    if len(atts) != 1 or len(mlps) != 1 or a is None or m is None or a.kind != "mha" or a.sliding_window:
        return None
    if m.kind != "gated" or any(la.mixer for la in spec.layers):
        return None
    return decoder_buffer(
        n_layer=spec.num_layers,
        n=n_ub,
        n_out=n_out,
        hidden=spec.hidden_size,
        q_width=a.q_width,
        k_width=a.kv_width,
        v_width=a.num_kv_heads * a.v_head_dim,
        att_out_width=a.v_head_dim,
        ffn=m.intermediate_size,
        vocab=spec.vocab_size,
        n_kv=kv.cells,
        n_heads=a.num_heads,
        flash=flash,
        f16_mask=f16_mask,
        glu_op=glu_op,
        qk_norm=bool(traits_of(spec.model_type).qk_norm),
    )


def compute_buffer_bytes(
    spec: ModelSpec, n_tokens: int, n_kv: int, flash_attn: bool, n_outputs: int, n_kv_swa: int | None = None
) -> tuple[int, str]:
    """Peak of the whole worst-case graph on one backend holding every layer (the CPU-only build)."""
    kv = Kv(n_kv, n_kv, n_kv_swa or n_kv, 1)
    all_layers = list(range(spec.num_layers))
    mask = _mask_bytes(spec, n_tokens, kv, flash_attn, all_layers)
    out = n_outputs * spec.vocab_size * 4 + 2 * n_tokens * spec.hidden_size * 4
    ffn = max((_ffn_act(spec, i, n_tokens) for i in all_layers), default=0)
    att = max((_att_act(spec, i, n_tokens, kv, flash_attn) for i in all_layers), default=0)
    phases = {"output (logits)": out, "feed-forward + KQ mask": ffn + mask, "attention + KQ mask": att + mask}
    name = max(phases, key=lambda k: phases[k])
    return phases[name], name


def estimate(rm: ResolvedModel, wl: Workload) -> Estimate:
    from ..result import Estimate

    validate_options(wl)
    spec = rm.spec
    tk = cache_type(wl.llama.cache_type_k, wl.kv_dtype, "k")
    tv = cache_type(wl.llama.cache_type_v, wl.kv_dtype, "v")
    backend = llama_backend(wl)
    memory = device_memory(wl)
    n_dev = 0 if backend == "cpu" else (len(memory) if memory else 1)
    split = wl.llama.tensor_split or (tuple(float(m) for m in memory) if memory else None)
    n_seq = wl.batch
    n_batch = min(wl.llama.n_batch, wl.context * n_seq)
    n_ub = min(wl.llama.n_ubatch, n_batch)
    kv = kv_geometry(spec, wl.context, n_seq, n_ub, wl.llama.kv_unified, wl.llama.swa_full)
    # logits rows of the worst-case graph (llama_context::sched_reserve: min(n_tokens, n_outputs_max)); the last
    # block then keeps only those rows (get_rows on inp_out_ids), so the output stage shrinks with them
    n_out = min(n_ub, wl.llama.n_outputs_max) if wl.llama.n_outputs_max else n_ub
    glu_op = wl.llama.llama_build is None or wl.llama.llama_build >= GLU_OP_BUILD
    f16_mask = wl.llama.llama_build is not None and wl.llama.llama_build >= F16_MASK_BUILD
    lay = layout(
        spec.num_layers,
        wl.llama.n_gpu_layers,
        n_dev,
        split,
        wl.llama.llama_build is None or wl.llama.llama_build >= OUTPUT_FIRST_BUILD,
    )
    n_cpu_moe = spec.num_layers if wl.llama.cpu_moe else (wl.llama.n_cpu_moe or 0)
    tensors, how = _tensors(rm, wl)
    overrides = n_cpu_moe > 0 and any(t.is_expert for t in tensors)

    # weights per device
    w_dev = [0] * n_dev
    w_host = 0
    host_tensors: list[Tensor] = []
    for t in tensors:
        d = _device_of(t, lay, n_cpu_moe)
        if d >= 0:
            w_dev[d] += _gpu_bytes(t, backend)
        else:
            w_host += t.nbytes
            host_tensors.append(t)
    tied = not any(t.name == "output.weight" for t in tensors)
    if tied and lay.output >= 0:  # TENSOR_DUPLICATED: the output layer's own copy of token_embd
        for t in tensors:
            if t.name == "token_embd.weight":
                w_dev[lay.output] += _gpu_bytes(t, backend)

    # KV cache per device (offload_kqv: on the layer's device)
    kv_dev = [0] * n_dev
    kv_host = 0
    kv_layer: dict[int, int] = {}
    for i in range(spec.num_layers):
        kb, vb = kv_layer_bytes(spec, i, kv, tk, tv)
        kv_layer[i] = kb + vb
        if lay.layers[i] >= 0:
            kv_dev[lay.layers[i]] += pad(kb, GPU_ALIGN) + pad(vb, GPU_ALIGN)
        else:
            kv_host += kb + vb
    state = sum(la.mixer.state_elems for la in spec.layers if la.mixer) * 4 * n_seq
    if state:
        holder = next((d for d in lay.layers if d >= 0), -1)
        if holder >= 0:
            kv_dev[holder] += state
        else:
            kv_host += state

    # compute buffers
    h = spec.hidden_size
    offload = backend in OP_OFFLOAD_BACKENDS and n_ub >= OP_OFFLOAD_MIN_BATCH and n_dev > 0
    cpu_layers = [i for i in range(spec.num_layers) if lay.layers[i] < 0]
    on_dev: list[list[int]] = [[i for i in range(spec.num_layers) if lay.layers[i] == d] for d in range(n_dev)]
    out_dev = lay.output if lay.output >= 0 else (0 if (offload or backend == "metal") and n_dev else -1)
    if n_dev and (offload or backend == "metal"):
        on_dev[0] = sorted(on_dev[0] + cpu_layers)
        graph_cpu_layers: list[int] = []
    else:
        graph_cpu_layers = cpu_layers
    copies = backend not in ("metal",)  # unified memory: the GPU reads host buffers in place

    def host_weight(il: int | None, kinds: tuple[str, ...]) -> int:
        """The largest host-resident weight of block il (None: the output layer) an op would copy."""
        best = 0
        for t in host_tensors:
            if not t.is_matrix or t.is_input:
                continue
            is_out = il is None and t.layer is None and t.name.startswith("output")
            if is_out or (il is not None and t.layer == il and any(k in t.name for k in kinds)):
                best = max(best, t.nbytes)
        return best if copies else 0

    pipeline = n_dev > 1 and lay.n_gpu_layers > spec.num_layers and not overrides and backend in ("cuda", "rocm")
    n_copies = SCHED_MAX_COPIES if pipeline else 1
    # the output on a GPU: logits beside the normed hidden state (the norm's multiply runs in place); measured
    # CUDA logs: Llama 3 8B 258.50 MiB = 128256 × 512 × 4 + 512 × 4096 × 4; Metal logs the same shape (Qwen3-4B
    # 301.75 MiB at n_ubatch 512, Llama 3.2 3B 64.12 MiB at 128) except one, Qwen2.5-0.5B at 512 (300.25 MiB: a
    # second hidden state, where ggml-alloc placed the logits above the freed pre-norm state rather than on it)
    out_act = n_out * spec.vocab_size * 4 + n_out * h * 4
    devices: list[LlamaCppDevice] = []
    first_att_dev = next((d for d in range(n_dev) for i in on_dev[d] if spec.layers[i].attention), -1)
    for d in range(n_dev):
        layers = on_dev[d]
        # the KQ mask as logged builds make it: f32 on the host, copied to the GPU; with flash attention cast to f16
        # there once (on the device of the first attention layer, which holds the f32 copy, the f16 cast and the
        # layer's q/residual at that moment) and passed on as f16. Measured: Llama 3.2 3B at 131072 cells with FA,
        # ROCm0 408.01 MiB = 256 (f32) + 128 (f16) + 512 × 4 × 3072 × 4; without FA the f32 copy is the mask.
        m32 = _mask_bytes(spec, n_ub, kv, False, layers) if layers else 0
        m16 = _mask_bytes(spec, n_ub, kv, True, layers) if layers else 0
        mask = m16 if wl.llama.flash_attn else m32
        phases = {"none": 0}
        if layers and wl.llama.flash_attn and d == first_att_dev and not f16_mask:
            q_w = max((a.q_width for i in layers if (a := spec.layers[i].attention) is not None), default=h)
            phases["KQ mask cast to f16"] = m32 + m16 + n_ub * (2 * h + 2 * q_w) * 4
        if layers:
            ffn = max(_ffn_act(spec, i, n_ub, glu_op) + host_weight(i, ("ffn_",)) for i in layers)
            att = max(
                _att_act(spec, i, n_ub, kv, wl.llama.flash_attn, gpu=True)
                + max(
                    host_weight(i, ("attn_", "ssm_", "shortconv")), kv_layer[i] if lay.layers[i] < 0 and copies else 0
                )
                for i in layers
            )
            # pipeline parallelism: every copy of the split inputs (the mask and the incoming hidden state) is kept
            # (ggml_backend_sched_split_graph, n_copies > 1); measured: Command-R on two GPUs 672.01 MiB
            extra = (n_copies - 1) * mask + (n_copies * n_ub * h * 4 if n_copies > 1 else 0)
            phases["feed-forward + KQ mask"] = ffn + mask + extra
            phases["attention + KQ mask"] = att + mask + extra
        if out_dev == d:
            phases["output (logits)"] = out_act + (host_weight(None, ()) if lay.output < 0 else 0)
        if n_dev == 1 and not cpu_layers and lay.output == 0 and not overrides and backend != "metal":
            # the whole graph on one GPU with its inputs copied in: where ggml-alloc places each tensor, holes
            # included, replaces the largest live set above (a lower bound of it). Measured: Qwen2.5-7B with flash
            # attention at 32768 cells, 382.01 MiB (the f32 mask copy freed in layer 0 leaves a 64 MiB hole the
            # logits do not fit); Metal reads the inputs in place, so no copies and no such hole there
            replay = replayed_buffer(spec, n_ub, n_out, kv, wl.llama.flash_attn, f16_mask, glu_op)
            if replay is not None:
                phases = {"ggml-alloc replay of the whole graph (holes included)": replay}
        name = max(phases, key=lambda k: phases[k])
        devices.append(LlamaCppDevice(w_dev[d], kv_dev[d], phases[name], name))

    # graph inputs live on the CPU backend: token ids, positions (4 per token for M-RoPE), output ids, the KQ mask(s);
    # the embeddings looked up from the CPU-resident token_embd are a CPU node; pipeline parallelism keeps 4 copies of
    # the inputs (not of the lookup)
    pos = 4 if spec.model_type.startswith(("qwen2_vl", "qwen2_5_vl")) else 1
    graph_inputs = n_ub * 4 * (2 + pos) + _mask_bytes(
        spec, n_ub, kv, (n_dev == 0 or f16_mask) and wl.llama.flash_attn, list(range(spec.num_layers))
    )
    inputs = n_ub * h * 4 + graph_inputs
    if n_dev == 0:
        comp_host, host_phase = compute_buffer_bytes(spec, n_ub, kv.cells, wl.llama.flash_attn, n_ub, kv.swa_cells)
    else:
        comp_host = n_ub * h * 4 + graph_inputs * n_copies
        if backend == "metal":
            # Metal builds hold the looked-up embeddings twice in the CPU compute buffer: Qwen2.5-0.5B, gpt-oss-20b
            # and Llama 3.2 3B log exactly one more n_ubatch × n_embd f32 tensor there than CUDA builds do
            comp_host += n_ub * h * 4
        host_phase = "graph inputs (embeddings looked up on the CPU, positions, mask)"
        if graph_cpu_layers:  # no op offload: the CPU layers' part of the graph runs in host memory
            cpu_peak = max(
                max(_ffn_act(spec, i, n_ub, glu_op), _att_act(spec, i, n_ub, kv, wl.llama.flash_attn))
                for i in graph_cpu_layers
            )
            comp_host = max(comp_host, cpu_peak + inputs)
            if out_dev < 0:
                comp_host = max(comp_host, out_act)
    out_host = n_seq * spec.vocab_size * 4

    w_gpu, kv_gpu = sum(w_dev), sum(kv_dev)
    c_gpu = sum(du.compute_gpu_bytes for du in devices)
    ctx_bytes = LLAMA_CUDA_CONTEXT_BYTES * n_dev if backend in ("cuda", "rocm") else 0
    att_layers = len(spec.attention_layers)
    windows = kv.swa_cells != kv.cells or any(la.attention and la.attention.sliding_window for la in spec.layers)
    phase = max(devices, key=lambda du: du.compute_gpu_bytes).compute_phase if devices else host_phase
    where = (
        f"{sum(1 for x in lay.layers if x >= 0)}/{lay.n_layer} blocks"
        + (" + output layer" if lay.output >= 0 else "")
        + " on the GPU"
        + ("s" if n_dev > 1 else "")
    )
    moe_note = (
        f"; experts of blocks 0..{n_cpu_moe - 1} on the CPU"
        if overrides and n_cpu_moe < spec.num_layers
        else "; every expert tensor on the CPU"
        if overrides
        else ""
    )
    # the --tensor-split that leaves every GPU the same share of its memory free: blocks in proportion to each
    # device's memory less what it holds whatever its blocks (its compute buffer, the CUDA context)
    split_hint: list[float] = []
    if n_dev > 1 and device_memory(wl):
        # GPU bytes of each offloaded position (the blocks from i_gpu_start, then the output layer), without the
        # expert tensors kept in host memory
        on_gpu = [il for il in range(spec.num_layers) if lay.layers[il] >= 0]
        position_of = {il: k for k, il in enumerate(on_gpu)}
        per_pos = [kv_layer[il] for il in on_gpu] + ([0] if lay.output >= 0 else [])
        for t in tensors:
            if t.is_input or (t.is_expert and t.layer is not None and t.layer < n_cpu_moe):
                continue
            if t.layer is None or t.layer >= spec.num_layers:
                if lay.output >= 0:
                    per_pos[-1] += t.nbytes
            elif t.layer in position_of:
                per_pos[position_of[t.layer]] += t.nbytes
        fixed = [du.compute_gpu_bytes + (ctx_bytes // n_dev) for du in devices]
        split_hint = balanced_split(per_pos, list(memory or ()), fixed)
    breakdown = (
        Component(
            "weights", w_gpu, f"{how}: {where}{moe_note}; token_embd stays on the CPU; {w_host:,} bytes in host memory"
        ),
        Component(
            "kv_cache",
            kv_gpu,
            f"{att_layers} attention layers × {kv.cells:,} cells × {kv.streams} stream(s) (n_ctx "
            f"{kv.n_ctx:,} = {wl.context:,} × {n_seq} slot(s) padded to {KV_PAD}) × K {tk} + V {tv}"
            + (f"; sliding-window layers {kv.swa_cells:,} cells" if windows else "")
            + (f"; {kv_host:,} bytes on the CPU for CPU layers" if kv_host else ""),
        ),
        Component(
            "compute_buffer",
            c_gpu,
            f"ggml graph reserve for n_ubatch {n_ub} × n_kv {kv.cells:,}, flash attention "
            f"{'on' if wl.llama.flash_attn else 'off'}; largest phase: {phase}"
            + (
                "; includes the copy of a host-resident weight for offloaded ops"
                if offload and host_tensors and any(t.is_matrix and not t.is_input for t in host_tensors)
                else ""
            ),
        ),
        *(
            [
                Component(
                    "cuda_context",
                    ctx_bytes,
                    "CUDA/HIP driver context and cuBLAS handle per GPU (assumed typical value; not in llama.cpp's log)",
                )
            ]
            if ctx_bytes
            else []
        ),
    )
    allocated = w_gpu + kv_gpu + c_gpu
    assumptions = [
        f"engine: llama.cpp (llama-server / llama-cli), {backend.upper() if backend != 'metal' else 'Metal'} backend, "
        f"{n_dev} GPU(s), memory-mapped GGUF",
        f"n_gpu_layers {lay.n_gpu_layers if lay.n_gpu_layers <= lay.n_layer else 'all'}: {where} (-ngl N puts the "
        "output layer and the last N-1 blocks on the GPU); token embeddings stay on the CPU",
        f"n_ctx {kv.n_ctx:,} = context {wl.context:,} × {n_seq} slot(s), padded to {KV_PAD}; "
        + ("one unified KV stream" if wl.llama.kv_unified else f"{kv.streams} KV stream(s) of {kv.cells:,} cells")
        + f"; n_batch {n_batch}, n_ubatch {n_ub}",
        f"KV cache types: K {tk}, V {tv}"
        + ("; sliding-window layers at full size (--swa-full)" if wl.llama.swa_full else ""),
        f"logits rows in the worst-case graph: {n_out}"
        + (" (n_outputs_max, one per slot in a recent llama-server)" if wl.llama.n_outputs_max else " (n_ubatch)"),
        *(
            [
                f"llama.cpp build b{wl.llama.llama_build}: "
                + ("fused GLU feed-forward" if glu_op else "in-place silu × up feed-forward (before the GLU ops)")
                + ", "
                + (
                    "-ngl counts the output layer first"
                    if wl.llama.llama_build >= OUTPUT_FIRST_BUILD
                    else "-ngl counts blocks only (the output layer needs ngl > n_layer)"
                )
            ]
            if wl.llama.llama_build is not None
            else []
        ),
        *(
            [
                "KQ mask: f32, copied to the GPU and cast to f16 there, as builds before b9410 do (no build given; "
                "--llama-build 9410 or later for the f16 mask, whose buffer can be smaller)"
            ]
            if wl.llama.flash_attn and n_dev and wl.llama.llama_build is None and backend != "metal"
            else []
        ),
        f"host memory: weights {w_host:,} bytes, KV {kv_host:,} bytes, compute buffer {comp_host:,} bytes, output "
        f"buffer {out_host:,} bytes (logits of {n_seq} slot(s))",
        *(
            [
                "Metal: every buffer above lives in unified memory and counts against the GPU working-set limit "
                "(recommendedMaxWorkingSetSize"
                + (f", {memory[0] / 1024**3:,.1f} GiB here" if memory else "")
                + "; raise it with `sudo sysctl iogpu.wired_limit_mb=<MiB>`); no CUDA context"
            ]
            if backend == "metal"
            else []
        ),
        *(
            ["pipeline parallelism: 4 copies of each GPU's graph inputs (ggml_backend_sched n_copies)"]
            if pipeline
            else []
        ),
        *spec.notes,
    ]
    details = LlamaCppDetails(
        weights_gpu_bytes=w_gpu,
        weights_host_bytes=w_host,
        kv_gpu_bytes=kv_gpu,
        kv_host_bytes=kv_host,
        compute_gpu_bytes=c_gpu,
        compute_host_bytes=comp_host,
        output_host_bytes=out_host,
        n_ctx=kv.n_ctx,
        n_ctx_seq=kv.cells,
        kv_streams=kv.streams,
        n_batch=n_batch,
        n_ubatch=n_ub,
        n_outputs=n_out,
        cache_type_k=tk,
        cache_type_v=tv,
        backend=backend,
        n_gpu_layers=lay.n_gpu_layers,
        blocks_on_gpu=sum(1 for x in lay.layers if x >= 0),
        output_on_gpu=lay.output >= 0,
        n_cpu_moe=n_cpu_moe,
        swa_cells=kv.swa_cells if windows else None,
        devices=tuple(devices),
        layer_devices=tuple(lay.layers),
        tensor_split=tuple(split_hint),
        tensor_split_used=tuple(split) if n_dev > 1 and split else (),
        file_type=None if how.startswith("the GGUF file") else (stored_mix(spec, wl) or mix_name(wl.quant, wl.dtype)),
        weights_total_bytes=sum(t.nbytes for t in tensors),
    )
    return Estimate(
        model=spec.name,
        params=spec.params,
        active_params=spec.active_params,
        engine="llama.cpp",
        workload=wl,
        weights_bytes=w_gpu,
        kv_cache_bytes=kv_gpu,
        activation_bytes=c_gpu,
        peak_allocated_bytes=allocated,
        total_bytes=allocated + ctx_bytes,
        breakdown=breakdown,
        assumptions=tuple(assumptions),
        binding_phase=phase,
        details=details,
    )


def balanced_split(bytes_per_position: list[int], memory: list[int], fixed: list[int]) -> list[float]:
    """The --tensor-split that leaves every device the same fraction of its memory free: contiguous runs of the
    offloaded positions (blocks, then the output layer; `bytes_per_position` their GPU bytes) whose bytes are in
    proportion to each device's memory left after what it holds regardless of layers (`fixed`: compute buffer,
    context). Given as position counts: with proportions that sum to the positions offloaded, `layout` puts exactly
    that many on each device."""
    n_dev = len(memory)
    free = [max(0, m - f) for m, f in zip(memory, fixed, strict=True)]
    total_free = sum(free) or 1
    total = sum(bytes_per_position)
    targets, acc_free = [], 0
    for f in free:
        acc_free += f
        targets.append(total * acc_free / total_free)
    counts = [0] * n_dev
    d, acc = 0, 0
    for b in bytes_per_position:
        # on to the next device once this position would end past the current one's share by more than half of it
        while d < n_dev - 1 and acc + b / 2 > targets[d]:
            d += 1
        counts[d] += 1
        acc += b
    if bytes_per_position and counts[-1] == 0:  # the output layer is the last device's
        counts[counts.index(max(counts))] -= 1
        counts[-1] += 1
    return [float(c) for c in counts]
