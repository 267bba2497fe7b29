"""Training memory: one optimizer step of full fine-tuning, LoRA or QLoRA, single GPU or data-parallel sharded.

A step's peak is the largest of three moments (all on top of weights and optimizer states, which persist):

* A — the start of backward: every tensor autograd saved in the forward pass, plus the loss. transformers upcasts
  the logits to float32 for the cross-entropy, so its backward holds three batch × seq × vocab float32 buffers at
  once (saved log-softmax, incoming gradient, outgoing gradient: 12 bytes per token per vocabulary entry). Under
  autocast ("mixed") the bfloat16 copies of the weights are saved too. With gradient checkpointing only each
  layer's input is saved, and one layer is recomputed at a time during backward.
* B — late in backward: all gradients allocated, the first layer's activations and its backward temporaries.
* C — the optimizer step: all gradients plus the optimizer's temporaries (PyTorch's default foreach AdamW builds
  one parameter-sized list for sqrt(v); fused AdamW and SGD update in place; Adafactor rebuilds the full variance
  of one matrix at a time).

What autograd saves per layer and token was read off the transformers 5.17 / PyTorch 2.11 code paths and checked
with memory snapshots on an H200 (measurements/): RMSNorm keeps its float32 input copy and its bf16 output; SDPA
keeps q, k, v, its output and the log-sum-exp; the MLP keeps gate, act(gate), up and their product. peft keeps
LoRA weights in float32 (autocast_adapter_dtype), so each adapted linear saves a float32 copy of its input.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .components import Component
from .components.allocator import CachingAllocator
from .components.runtime import cublas_workspace, cuda_context, training_reserve
from .components.weights import common_weights, layer_param_sizes
from .engines.transformers import sdpa_runs_math_kernel
from .errors import BadInput, UnsupportedArchitecture
from .model import Layer, ModelSpec, linear_shapes
from .records import record, replace
from .request import TrainWorkload, Workload
from .resolved import ResolvedModel
from .resolver import resolve_model
from .result import Estimate
from .traits import traits_of

LINEAR_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj", "gate_up_proj")


def lora_target_names(model: ModelSpec, targets: str) -> set[str]:
    """Module names LoRA adapts. "all-linear" = every linear layer in the blocks (peft excludes the output head)."""
    t = targets.strip().lower()
    if t in ("all-linear", "all", "all_linear"):
        return set(LINEAR_NAMES)
    names = {x.strip() for x in re.split(r"[,\s]+", t) if x.strip()}
    aliases = {
        "fc1": {"up_proj"},
        "fc2": {"down_proj"},
        "w1": {"gate_proj"},
        "w3": {"up_proj"},
        "w2": {"down_proj"},
        "out_proj": {"o_proj"},
        "dense": {"o_proj"},
    }
    out: set[str] = set()
    for n in names:
        if n in LINEAR_NAMES:
            out.add(n)
        elif n in aliases:
            out |= aliases[n]
        else:
            raise BadInput(
                f"lora_targets: unknown target module {n!r} (use all-linear or names like {', '.join(LINEAR_NAMES)})",
                field="lora_targets",
            )
    return out


def lora_params(model: ModelSpec, rank: int, targets: set[str]) -> int:
    """Trainable LoRA parameters, as peft counts them: r × (in + out) per adapted linear."""
    total = 0
    for layer in model.layers:
        for name, (i, o) in linear_shapes(model, layer).items():
            if name in targets:
                total += rank * (i + o)
    return total


# --------------------------------------------------------------------------------------------------------------
# activations saved for backward, per token


def _norm_own(model_type: str, res: int, frozen: bool = False) -> int:
    """Bytes per normalized element a norm keeps for backward (excluding what consumers of its output keep).

    transformers' Llama-style RMSNorm keeps the float32 upcast and the input of `weight * x.to(dtype)`; Gemma's,
    OLMo 2's, gpt-oss's and Cohere's multiply the weight in float32, so they keep the float32 upcast and the float32
    normalized value. With the norm's weight frozen (LoRA, QLoRA) the product by the weight needs only the weight
    for its input gradient, so only the float32 upcast (read by `x * rsqrt(var)`) is kept."""
    if traits_of(model_type).layer_norm_kind:
        return res  # nn.LayerNorm keeps its input (and per-row statistics)
    if frozen:
        return 4
    if traits_of(model_type).fp32_norm_product:
        return 8
    return 4 + (4 if res == 4 else 2)


def _saved_items(model: ModelSpec, layer: Layer, tw: TrainWorkload, targets: set[str]) -> list[int]:
    """Bytes per token of the tensors (or groups of tensors) autograd keeps for one layer until its backward."""
    h = model.hidden_size
    mt = model.model_type
    t = traits_of(mt)
    mixed = tw.precision == "mixed"
    e = 4 if tw.precision == "fp32" else 2  # activation dtype of matmul outputs
    res = 4 if tw.precision in ("fp32", "mixed") else 2  # residual stream dtype
    lora = tw.method in ("lora", "qlora")
    fp32_adapters = tw.method == "lora"  # peft's autocast_adapter_dtype; QLoRA recipes keep adapters in bf16
    linears = linear_shapes(model, layer)
    norm = _norm_own(mt, res, frozen=lora)

    def input_kept(names: tuple[str, ...]) -> int:
        """Bytes per input element kept by the linears that read one tensor."""
        present = [n for n in names if n in linears]
        if lora and fp32_adapters:
            return 4 * sum(1 for n in present if n in targets)  # peft casts the input to float32 per adapter
        if lora:
            return e if any(n in targets for n in present) else 0  # bf16 adapters keep the input itself
        if mixed:
            return 2 * len(present)  # autocast's bf16 cast, one per linear
        return e if present else 0  # the tensor itself

    pre_norms = 1 if t.pre_norms else 0
    items: list[int] = []
    attn_inputs = ("qkv_proj",) if t.fused_qkv else ("q_proj", "k_proj", "v_proj")
    mlp_inputs = ("gate_up_proj",) if t.fused_gate_up else ("gate_proj", "up_proj")
    items.append(h * (pre_norms * norm + input_kept(attn_inputs)))
    a = layer.attention
    ae = 2 if mixed else e
    if a is not None:
        if a.kind == "mla":
            q = a.num_heads * a.head_dim
            kv = a.num_heads * (a.head_dim + a.v_head_dim)
            items.append(ae * (2 * q + kv + a.kv_lora_rank + a.rope_head_dim) + 4 * a.num_heads)
        else:
            q = a.num_heads * a.head_dim
            k = a.num_kv_heads * a.head_dim
            v = a.num_kv_heads * a.v_head_dim
            items.append(ae * (2 * q + k + v) + 4 * a.num_heads)
            if t.qk_norm and not t.qk_norm_flag:  # (an optional one, set in config.json, is not seen here)
                items.append((q + k) * (norm if t.fp32_norm_product or lora else 4 + ae))
            if a.sliding_window is not None and tw.seq > a.sliding_window and tw.attn != "eager":
                # a window shorter than the sequence forces a mask: SDPA keeps it as an additive float mask and
                # its output needs a real transpose copy
                items.append(2 * tw.seq + ae * q)
            masked = a.sliding_window is not None and tw.seq > a.sliding_window
            if sdpa_runs_math_kernel(model, layer, e, tw.attn, masked):
                # float32 grouped-query SDPA runs the math kernel (vram.engines.transformers): autograd keeps its
                # softmax output (heads × seq float32 per token) and the scaled q, expanded-and-scaled k, expanded v
                items.append(a.num_heads * tw.seq * 4 + 4 * (2 * q + a.num_heads * a.v_head_dim))
            if tw.attn == "eager" and t.sink_softmax_in_dtype:
                items.append(a.num_heads * tw.seq * ae)  # in-dtype softmax output (the scores are a view of it)
            elif tw.attn == "eager":
                items.append(a.num_heads * tw.seq * (4 + ae))  # float32 softmax output and bf16 probabilities per row
            o_in = a.num_heads * a.v_head_dim
            items.append(o_in * input_kept(("o_proj",)) if (lora or mixed) else 0)
    elif layer.mixer is not None:
        items.append(ae * 2 * layer.mixer.inner_size)
    if t.post_norms:
        items.append(h * norm)  # post-attention norm on the attention output
    items.append(h * (pre_norms * norm + input_kept(mlp_inputs)))
    m = layer.mlp
    if m is not None:
        if m.kind == "moe":
            k = m.experts_per_token
            items.append(k * ae * (2 * h + 4 * m.intermediate_size) + m.num_experts * 4)
            if m.shared_intermediate_size:
                items.append(4 * ae * m.shared_intermediate_size)
        else:
            width = m.intermediate_size
            n_saved = 3 if m.kind == "gated" else 1
            items.append(ae * n_saved * width + width * (input_kept(("down_proj",)) if (lora or mixed) else ae))
    if t.post_norms:
        items.append(h * norm)  # post-feedforward norm
    return items


def _saved_per_token(model: ModelSpec, layer: Layer, tw: TrainWorkload, targets: set[str]) -> int:
    """Bytes autograd keeps for one layer and one token until that layer's backward."""
    return sum(_saved_items(model, layer, tw, targets))


@record(frozen=True)
class _Precision:
    param_bytes: float
    grad_bytes: float
    state_bytes: float  # bytes per optimizer state element


def _precision(tw: TrainWorkload) -> _Precision:
    if tw.precision in ("fp32", "mixed"):
        return _Precision(4, 4, 4)
    return _Precision(2, 2, 2)


def _optimizer_state_elems(opt: str) -> float:
    return {"adamw": 2, "adamw-fused": 2, "adamw-8bit": 0, "sgd": 0, "sgd-momentum": 1, "adafactor": 0, "lion": 1}[opt]


def _largest_param(model: ModelSpec) -> int:
    best = model.embed_params
    for layer in model.layers:
        for i, o in linear_shapes(model, layer).values():
            best = max(best, i * o)
        m = layer.mlp
        if m is not None and m.kind == "moe" and m.num_experts:
            best = max(best, layer.expert_params // max(1, m.num_experts) * m.num_experts // 2)
    return best


def _factored_state_elems(model: ModelSpec) -> int:
    """Adafactor: a row and a column vector per matrix, full variance for vectors."""
    total = model.vocab_size + model.hidden_size  # embedding
    if model.head_params:
        total += model.vocab_size + model.hidden_size
    for layer in model.layers:
        for i, o in linear_shapes(model, layer).values():
            total += i + o
        total += layer.small_params
        m = layer.mlp
        if m is not None and m.kind == "moe":
            total += m.num_experts * (model.hidden_size + 2 * m.intermediate_size + model.hidden_size)
    return total + model.final_params


@record(frozen=True)
class _Sharding:
    weights: float  # fraction of weights kept per GPU
    grads: float
    states: float
    label: str


def _sharding(tw: TrainWorkload) -> _Sharding:
    n = tw.gpus
    if tw.fsdp == "hybrid":
        n = min(n, tw.gpus_per_node)
    stage = tw.zero
    if tw.fsdp in ("full", "hybrid"):
        stage = 3
    elif tw.fsdp == "grad-op":
        stage = 2
    if stage == 0 or n == 1:
        return _Sharding(1, 1, 1, "no sharding (each GPU holds everything)" if tw.gpus > 1 else "single GPU")
    label = {
        1: "ZeRO-1: optimizer states sharded",
        2: "ZeRO-2: gradients + optimizer states sharded",
        3: "ZeRO-3: parameters + gradients + optimizer states sharded",
    }[stage]
    if tw.fsdp:
        label = (
            {
                "full": "FSDP FULL_SHARD",
                "hybrid": f"FSDP HYBRID_SHARD (within {n}-GPU nodes)",
                "grad-op": "FSDP SHARD_GRAD_OP",
            }[tw.fsdp]
            + " ≈ "
            + label
        )
    return _Sharding(1 / n if stage >= 3 else 1, 1 / n if stage >= 2 else 1, 1 / n, f"{label} over {n} GPUs")


@record(frozen=True)
class _StepShape:
    """What one training step allocates, in the order it does (the input of the allocator replay). Sizes in bytes
    for the whole micro-batch; parameter groups are [embedding, layer 0 … layer N-1, final norm]."""

    param_sizes: tuple[tuple[int, ...], ...]  # every parameter tensor (the untied output layer in the last group)
    trainable_sizes: tuple[tuple[int, ...], ...]  # gradients each group's backward allocates (embedding, head: below)
    saved: tuple[tuple[int, ...], ...]  # tensor groups autograd keeps per layer
    casts: tuple[tuple[int, ...], ...]  # autocast's bf16 weight copies per layer (mixed precision)
    adapter_outs: tuple[tuple[int, ...], ...]  # LoRA: float32 output of each adapted linear (transient)
    hidden: int  # one hidden-state tensor
    width: int  # one MLP-intermediate-sized tensor (backward temporaries)
    logits: int  # logits in the activation dtype
    logits_fp32: int  # the float32 upcast for the cross-entropy (0 when the logits are float32 already)
    loss_buffer: int  # one float32 batch × seq × vocabulary buffer
    final_saved: int
    head_grad: int  # output layer's gradient (the tied embedding's), 0 when frozen
    embed_grad: int  # embedding's dense gradient, 0 when frozen
    tied: bool
    state_sizes: tuple[int, ...]  # optimizer states created at the first step, in order
    step_temps: tuple[int, ...]  # optimizer temporaries held together (foreach lists)
    pairwise_temps: tuple[int, ...]  # per-parameter optimizer temporaries (Adafactor), two at a time
    checkpointing: bool


@functools.lru_cache(maxsize=256)
def _replay_step(shape: _StepShape, steps: int = 2) -> tuple[int, int]:
    """Replay `steps` training steps through the caching allocator; (peak reserved, peak allocated) bytes. The
    second step is already the steady state (the optimizer states exist, every later step repeats it)."""
    al = CachingAllocator()
    states_done = False
    for _ in range(steps):
        # forward
        hidden = al.allocate(shape.hidden)
        kept_inputs: list[Any] = []
        saved: list[list[Any]] = []
        cached_casts: list[Any] = []
        for i in range(len(shape.saved)):
            casts = [al.allocate(c) for c in shape.casts[i]]
            if shape.checkpointing:  # the layer runs without saving; only its input is kept
                kept_inputs.append(hidden)
                cached_casts.extend(casts)
                for x in [al.allocate(x) for x in shape.saved[i]]:
                    al.free(x)
                saved.append([])
            else:
                saved.append([al.allocate(x) for x in shape.saved[i]] + casts)
            for x in [al.allocate(x) for x in shape.adapter_outs[i]]:
                al.free(x)
            new_hidden = al.allocate(shape.hidden)
            if not shape.checkpointing:
                al.free(hidden)
            hidden = new_hidden
        final = al.allocate(shape.final_saved)
        logits = al.allocate(shape.logits)
        upcast = al.allocate(shape.logits_fp32) if shape.logits_fp32 else None
        log_probs = al.allocate(shape.loss_buffer)
        if upcast is not None:
            al.free(upcast)
        al.free(logits)
        al.free(hidden)
        for c in cached_casts:  # autocast's cast cache is cleared when its context exits
            al.free(c)
        # backward: cross-entropy, the output layer, the final norm
        g_nll = al.allocate(shape.loss_buffer)
        g_logp = al.allocate(shape.loss_buffer)
        al.free(g_nll)
        al.free(log_probs)
        g_low = al.allocate(shape.logits) if shape.logits_fp32 else None
        al.free(g_logp)
        grads = [al.allocate(shape.head_grad)] if shape.head_grad else []
        grad_hidden = al.allocate(shape.hidden)
        if g_low is not None:
            al.free(g_low)
        grads.extend(al.allocate(b) for b in shape.trainable_sizes[-1])
        al.free(final)
        for i in reversed(range(len(shape.saved))):
            if shape.checkpointing:  # recompute the layer, saving this time
                casts = [al.allocate(c) for c in shape.casts[i]]
                saved[i] = [al.allocate(x) for x in shape.saved[i]] + casts
            temps = [al.allocate(shape.width) for _ in range(3)]
            new_grad = al.allocate(shape.hidden)
            grads.extend(al.allocate(b) for b in shape.trainable_sizes[i + 1])
            for x in temps + saved[i]:
                al.free(x)
            if shape.checkpointing:
                al.free(kept_inputs[i])
            al.free(grad_hidden)
            grad_hidden = new_grad
        if shape.embed_grad:
            g_embed = al.allocate(shape.embed_grad)
            if shape.tied:
                al.free(g_embed)  # added into the output layer's gradient
            else:
                grads.append(g_embed)
        al.free(grad_hidden)
        # optimizer step, then zero_grad(set_to_none=True)
        if not states_done:
            for b in shape.state_sizes:
                al.allocate(b)
            states_done = True
        for x in [al.allocate(b) for b in shape.step_temps]:
            al.free(x)
        for b in shape.pairwise_temps:
            pair = [al.allocate(b), al.allocate(b)]
            for x in pair:
                al.free(x)
        for g in grads:
            al.free(g)
    params_reserved, params_allocated = _replay_parameters(shape.param_sizes)
    return al.peak_reserved + params_reserved, al.peak_allocated + params_allocated


@functools.lru_cache(maxsize=64)
def _replay_parameters(param_sizes: tuple[tuple[int, ...], ...]) -> tuple[int, int]:
    """Segments the model's parameters (and the cuBLAS workspace) take when it is built: (reserved, allocated).
    They are allocated first and never freed; their segments' small leftovers are left out of the step's replay."""
    al = CachingAllocator()
    al.allocate(32 * 2**20)  # cuBLAS workspace
    for sizes in param_sizes:
        for b in sizes:
            al.allocate(b)
    return al.reserved, al.allocated


REPLAYED_OPTIMIZERS = ("adamw", "adamw-fused", "sgd", "sgd-momentum", "lion", "adafactor")


def _step_shape(
    spec: ModelSpec,
    tw: TrainWorkload,
    targets: set[str],
    norm_final: int,
    res_bytes: int,
    param_elem: float,
    grad_elem: float,
    state_elem: float,
) -> _StepShape:
    """The allocation sequence of one single-GPU step, from the same per-layer terms as the peak."""
    t = tw.batch * tw.seq
    h, v = spec.hidden_size, spec.vocab_size
    lora = tw.method == "lora"
    adapter = 4  # peft upcasts the adapters to float32
    e_act = 4 if tw.precision == "fp32" else 2
    layers = [layer_param_sizes(spec, layer, 1) for layer in spec.layers]
    adapters = (
        [
            [
                x
                for name, (i, o) in linear_shapes(spec, layer).items()
                if name in targets
                for x in (i * tw.lora_rank, tw.lora_rank * o)
            ]
            for layer in spec.layers
        ]
        if lora
        else []
    )
    tail = [spec.final_params] if spec.final_params else []
    params = [[int(spec.embed_params * param_elem)]] + [[int(x * param_elem) for x in g] for g in layers]
    params.append(
        [int(x * param_elem) for x in tail] + ([int(spec.head_params * param_elem)] if spec.head_params else [])
    )
    if lora:
        for g, extra in zip(params[1:], adapters, strict=False):
            g.extend(x * adapter for x in extra)
        trainable: list[list[int]] = [[], *[list(a) for a in adapters], []]
        elem = float(adapter)
    else:
        trainable = [[spec.embed_params], *layers, tail + ([spec.head_params] if spec.head_params else [])]
        elem = grad_elem
    flat = [x for g in trainable for x in g]
    opt = tw.optimizer
    n_states = {"adamw": 2, "adamw-fused": 2, "sgd": 0, "sgd-momentum": 1, "lion": 1, "adafactor": 0}[opt]
    states = [int(x * state_elem) for x in flat for _ in range(n_states)]
    if opt == "adafactor":
        states = (
            [
                int(d * state_elem)
                for layer in spec.layers
                for i, o in linear_shapes(spec, layer).values()
                for d in (i, o)
            ]
            if not lora
            else []
        )
    width = max((layer.mlp.intermediate_size for layer in spec.layers if layer.mlp is not None), default=h)

    def tt(groups: list[list[int]]) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(g) for g in groups)

    return _StepShape(
        param_sizes=tt(params),
        trainable_sizes=tt(
            [[] if i == 0 else [int(x * elem) for x in g] for i, g in enumerate(trainable[:-1])]
            + [[int(x * elem) for x in tail] if not lora else []]
        ),
        saved=tt([[x * t for x in _saved_items(spec, layer, tw, targets)] for layer in spec.layers]),
        casts=tt(
            [
                [2 * i * o for i, o in linear_shapes(spec, layer).values()]
                if tw.precision == "mixed" and not lora
                else []
                for layer in spec.layers
            ]
        ),
        adapter_outs=tt(
            [
                [t * o * adapter for name, (_, o) in linear_shapes(spec, layer).items() if name in targets]
                for layer in spec.layers
            ]
            if lora
            else [[] for _ in spec.layers]
        ),
        hidden=t * h * res_bytes,
        width=t * width * e_act,
        logits=t * v * e_act,
        logits_fp32=0 if e_act == 4 else t * v * 4,
        loss_buffer=t * v * 4,
        final_saved=t * norm_final,
        head_grad=0 if lora else int(v * h * grad_elem),
        embed_grad=0 if lora else int(spec.embed_params * grad_elem),
        tied=spec.tie_word_embeddings and not spec.head_params,
        state_sizes=tuple(states),
        step_temps=tuple(int(x * state_elem) for x in flat) if opt in ("adamw", "lion") else (),
        pairwise_temps=tuple(int(x * state_elem) for x in flat if x > h) if opt == "adafactor" else (),
        checkpointing=tw.grad_checkpointing,
    )


def estimate_training(model: str | ModelSpec | ResolvedModel, tw: TrainWorkload | None = None) -> Estimate:
    """Peak memory of one training step per GPU."""
    tw = (tw or TrainWorkload()).validate()
    rm = resolve_model(model)
    rm.require_modelled("transformers")  # a training step loads the whole checkpoint
    spec = rm.spec
    if not spec.layers:  # diffusion pipelines, Whisper, encoders (vram.families): inference estimates only
        kind = rm.entry.kind if rm.entry is not None else spec.model_type
        raise UnsupportedArchitecture(
            kind,
            "training estimates cover decoder-only language models (and the language model of vision-language ones)",
        )
    eager_note = []
    if tw.attn != "eager" and traits_of(spec.model_type).eager_only:
        tw = replace(tw, attn="eager")
        eager_note = [f"{spec.model_type} supports only eager attention in transformers: estimated with eager"]
    prec = _precision(tw)
    lora = tw.method in ("lora", "qlora")
    targets = lora_target_names(spec, tw.lora_targets) if lora else set()
    t = tw.batch * tw.seq
    h = spec.hidden_size
    v = spec.vocab_size
    shard = _sharding(tw)
    # DeepSpeed ZeRO / FSDP mixed precision: bf16 working weights and gradients, fp32 master copy in the optimizer
    sharded_mixed = (tw.zero > 0 or tw.fsdp is not None) and tw.precision == "mixed" and not lora
    master_bytes = 0.0
    if sharded_mixed:
        prec = _Precision(2, 2, 4)
        master_bytes = 4.0
    act_tw = replace(tw, precision="bf16") if sharded_mixed else tw
    assumptions = [
        f"engine: PyTorch + transformers; {tw.batch} × {tw.seq:,} tokens per micro-batch"
        + (f", {tw.grad_accum} accumulation steps" if tw.grad_accum > 1 else ""),
        f"attention: {tw.attn}; "
        + ("gradient checkpointing (non-reentrant)" if tw.grad_checkpointing else "no gradient checkpointing"),
    ]

    # weights ---------------------------------------------------------------------------------------------------
    if tw.method == "qlora":
        base = common_weights(rm, Workload(quant="nf4", dtype="bfloat16"))
        base_how = "4-bit NF4 base with double quantization (bitsandbytes)"
    else:
        dt = "float32" if prec.param_bytes == 4 else ("float16" if tw.precision == "fp16" else "bfloat16")
        base = common_weights(rm, Workload(dtype=dt, quant=None))
        base_how = f"{dt} parameters"
    if lora:
        trainable = lora_params(spec, tw.lora_rank, targets)
        adapter_elem = 4 if tw.method == "lora" else 2  # peft upcasts LoRA weights; QLoRA recipes train bf16 ones
        adapter_bytes = adapter_elem * trainable
        weights_b = int(base.bytes * shard.weights) + adapter_bytes
        weights = Component(
            "weights",
            weights_b,
            f"{base_how} (frozen) + {trainable:,} LoRA parameters (rank "
            f"{tw.lora_rank}, "
            f"{'all linear layers' if tw.lora_targets == 'all-linear' else tw.lora_targets}) "
            f"in {'float32' if adapter_elem == 4 else 'bfloat16'}",
        )
        grad_bytes_per, state_bytes_per = float(adapter_elem), 4.0
        params = spec.params + trainable
    else:
        trainable = spec.params
        weights_b = int(base.bytes * shard.weights)
        weights = Component(
            "weights",
            weights_b,
            f"{spec.params:,} {base_how}" + (f", {shard.weights:.3g} per GPU" if shard.weights < 1 else ""),
        )
        grad_bytes_per, state_bytes_per = prec.grad_bytes, prec.state_bytes
        params = spec.params
    assumptions.append(f"sharding: {shard.label}")

    # gradients and optimizer states ----------------------------------------------------------------------------
    grads_b = int(trainable * grad_bytes_per * shard.grads)
    grads = Component(
        "gradients",
        grads_b,
        f"{trainable:,} trainable parameters × {grad_bytes_per:g} bytes"
        + (f" × {shard.grads:.3g} (sharded)" if shard.grads < 1 else ""),
    )
    opt = tw.optimizer
    if opt == "adamw-8bit":
        state_total = trainable * 2 * (1 + 4 / 256)  # two uint8 states + fp32 absmax per 256-value block
        opt_how = "bitsandbytes 8-bit AdamW: 2 × 1 byte + block scales per parameter"
    elif opt == "adafactor":
        # factored moments: a row and a column vector per matrix (LoRA's A and B are thin matrices: r + in, r + out)
        state_total = (
            _factored_state_elems(spec) if not lora else 2 * trainable // max(1, tw.lora_rank)
        ) * state_bytes_per
        opt_how = "Adafactor: factored second moment (a row and a column vector per matrix)"
    else:
        n_states = _optimizer_state_elems(opt)
        state_total = trainable * (n_states * state_bytes_per + master_bytes)
        opt_how = (
            ("fp32 master weights + " if master_bytes else "")
            + {
                "adamw": "AdamW: exp_avg + exp_avg_sq",
                "adamw-fused": "AdamW (fused): exp_avg + exp_avg_sq",
                "sgd": "SGD without momentum: no state",
                "sgd-momentum": "SGD: momentum buffer",
                "lion": "Lion: one momentum buffer",
            }[opt]
            + f", {state_bytes_per:g} bytes each"
        )
    if tw.offload_optimizer:
        state_gpu = 0
        opt_how += "; offloaded to CPU memory"
    else:
        state_gpu = int(state_total * shard.states)
    states = Component(
        "optimizer_states",
        state_gpu,
        opt_how + (f"; × {shard.states:.3g} per GPU (sharded)" if shard.states < 1 else ""),
    )

    # activations -----------------------------------------------------------------------------------------------
    per_layer = [_saved_per_token(spec, layer, act_tw, targets) for layer in spec.layers]
    res_bytes = 4 if act_tw.precision in ("fp32", "mixed") else 2
    norm_final = h * (
        4
        + (4 if res_bytes == 4 else 2)
        + (2 if act_tw.precision == "mixed" or lora else (4 if act_tw.precision == "fp32" else 2))
    )
    loss_peak = 12 * t * v  # float32 log-softmax, its incoming and outgoing gradients
    if spec.logit_softcap:
        loss_peak += 2 * t * v  # tanh soft-capping keeps its bf16 output for backward
    head_cast = 2 * v * h if act_tw.precision == "mixed" and not lora else 0
    layer_casts = 0
    if act_tw.precision == "mixed" and not lora:
        layer_casts = 2 * sum(layer.linear_params for layer in spec.layers)
    loss_c = Component(
        "loss",
        loss_peak,
        f"float32 logits path of the cross-entropy: 12 bytes × {t:,} tokens × "
        f"{v:,} vocabulary" + (" + the soft-capped bf16 logits" if spec.logit_softcap else ""),
    )
    casts_how = "bf16 copies of the weights that autocast saved for backward"
    if tw.grad_checkpointing:
        saved = t * res_bytes * h * spec.num_layers + t * norm_final
        act_how = f"checkpointed: each layer's input ({res_bytes} bytes × hidden per token) kept"
        at_loss = [
            Component("activations", saved, act_how),
            loss_c,
            Component("autocast_weight_copies", head_cast, casts_how),
        ]
        recompute = t * max(per_layer) + (layer_casts // max(1, spec.num_layers))
        head_grad = int(v * h * grad_bytes_per) if not lora else 0
        at_recompute = [
            Component("activations", saved, act_how),
            Component("recompute", recompute, "one layer's activations recomputed during backward"),
            Component("autocast_weight_copies", head_cast, casts_how),
            Component("gradients_so_far", head_grad, "output-layer gradient already accumulated"),
        ]
        parts_a = max(at_loss, at_recompute, key=lambda parts: sum(c.bytes for c in parts))
    else:
        saved = t * sum(per_layer) + t * norm_final
        act_how = "all layers' saved tensors (norm float32 copies, q/k/v, attention output, MLP gate/up/act/product)"
        parts_a = [
            Component("activations", saved, act_how),
            loss_c,
            Component("autocast_weight_copies", head_cast + layer_casts, casts_how),
        ]
    if tw.method == "qlora":
        largest = max((i * o for layer in spec.layers for i, o in linear_shapes(spec, layer).values()), default=0)
        parts_a.append(
            Component(
                "dequantized_weight",
                2 * largest,
                "bitsandbytes dequantizes each 4-bit matrix to bf16 for its matmul, one at a time (the largest shown)",
            )
        )
    phase_a = sum(c.bytes for c in parts_a)
    # B: end of backward — all grads + first layer's activations and temporaries
    e_act = 4 if tw.precision == "fp32" else 2
    mlp0 = spec.layers[0].mlp
    width0 = mlp0.intermediate_size if mlp0 else h
    layer0 = t * per_layer[0] + 3 * t * width0 * e_act
    # a tied embedding gets its second gradient from the embedding backward, after layer 0's: a dense
    # vocabulary × hidden tensor that is added into the output layer's gradient, then freed
    tied = spec.tie_word_embeddings and not spec.head_params and not lora
    tied_grad = int(spec.embed_params * grad_bytes_per * shard.grads) + t * h * e_act if tied else 0
    phase_b = grads_b + max(layer0, tied_grad)
    # C: optimizer step temporaries
    if opt in ("adamw", "lion") and not tw.offload_optimizer:
        opt_tmp = int(trainable * state_bytes_per * shard.states)
        tmp_how = "foreach implementation: one parameter-sized temporary list"
    elif opt == "adafactor":
        opt_tmp = 2 * (_largest_param(spec) if not lora else 0) * int(state_bytes_per)
        tmp_how = "variance of the largest matrix rebuilt, twice"
    else:
        opt_tmp = 0
        tmp_how = "updates in place"
    phase_c = grads_b + opt_tmp
    # sharded runs also hold gathered parameters / gradient buckets
    comm = 0
    if shard.weights < 1:
        biggest_layer = max(layer.params for layer in spec.layers)
        comm = int(2 * biggest_layer * prec.param_bytes)  # the layer being computed and the one prefetched
    elif tw.gpus > 1:
        comm = 2 * 25 * 2**20 * 4  # DDP / ZeRO gradient buckets (25 MB, two in flight)
    phases = {
        "start of backward (saved activations + loss)": phase_a,
        "end of backward (gradients)": phase_b,
        "optimizer step": phase_c,
    }
    binding = max(phases, key=lambda k: phases[k])
    transient = phases[binding]
    ws = cublas_workspace(tw.arch)
    persistent = weights.bytes + state_gpu
    # activations component = what is live at the binding moment beyond weights, grads and states
    if binding.startswith("start"):
        act_b = transient
        grads_at_peak = 0
    elif binding.startswith("end"):
        act_b = transient - grads_b
        grads_at_peak = grads_b
    else:
        act_b = 0
        grads_at_peak = grads_b
    comps: list[Component] = [
        weights,
        states,
        replace(
            grads,
            bytes=grads_at_peak,
            explanation=grads.explanation + ("" if grads_at_peak else "; not yet allocated at the peak"),
        ),
    ]
    if binding.startswith("start"):
        comps.extend(c for c in parts_a if c.bytes)
    elif binding.startswith("end"):
        comps.append(
            Component(
                "activations",
                act_b,
                "first layer's saved tensors and backward temporaries"
                if layer0 >= tied_grad
                else "the tied embedding's second (dense) gradient, before it is added into the output layer's",
            )
        )
    else:
        comps.append(Component("optimizer_temporaries", opt_tmp, tmp_how))
    if comm:
        comps.append(Component("communication", comm, "gathered parameters / gradient buckets for data parallelism"))
    allocated = persistent + transient + ws.bytes + comm
    comps.append(ws)
    if (
        tw.gpus == 1
        and not tw.offload_optimizer
        and tw.method in ("full", "lora")
        and opt in REPLAYED_OPTIMIZERS
        and not sharded_mixed
    ):
        shape = _step_shape(
            spec, act_tw, targets, norm_final, res_bytes, prec.param_bytes, grad_bytes_per, state_bytes_per
        )
        peak_reserved, peak_live = _replay_step(shape)
        reserve = Component(
            "allocator_reserve",
            max(0, peak_reserved - peak_live),
            "PyTorch caching allocator, "
            "replayed over two steps: segments reserved for requests no cached block fitted, beyond "
            "the live peak",
        )
    else:
        reserve = training_reserve(transient)
    ctx = cuda_context(tw.arch)
    comps += [reserve, ctx]
    assumptions.extend(eager_note)
    assumptions.append(f"peak binds at: {binding}")
    assumptions.append(f"optimizer: {opt_how}")
    if tw.grad_accum > 1:
        assumptions.append(
            "gradient accumulation adds no memory beyond one micro-batch (gradients accumulate in "
            "place); global batch = micro-batch × accumulation × GPUs = "
            f"{tw.batch * tw.grad_accum * tw.gpus}"
        )
    est = Estimate(
        model=spec.name,
        params=params,
        active_params=spec.active_params,
        engine="transformers",
        workload=tw,
        weights_bytes=weights.bytes,
        kv_cache_bytes=0,
        activation_bytes=int(act_b),
        peak_allocated_bytes=int(allocated),
        total_bytes=int(allocated + reserve.bytes + ctx.bytes),
        breakdown=tuple(comps),
        assumptions=tuple(assumptions),
        binding_phase=binding,
        extra={"trainable_params": trainable, "gradient_bytes": grads_b, "optimizer_bytes": state_gpu},
    )
    return est
