#!/usr/bin/env python3
"""Write tests/data/arch/<name>.json: small synthetic configs of every architecture vram supports, each with the
parameter count and KV-cache contents that an independent implementation (transformers) gives for it.

Dev-only, run by hand when a family or variant is added; NOT part of the package or its dependencies. It needs a
scratch environment with PyTorch (CPU is enough) and transformers:

    /work/scratch/venv/bin/python tools/make_arch_fixtures.py            # torch 2.13 CPU + transformers 5.17.0
    /work/scratch/venv/bin/python tools/make_arch_fixtures.py --only llama_gqa qwen3_moe
    (diffusers 0.42.1 in the same environment, optional, counts the diffusion entries of the catalog)

For each variant it
  * builds the model with `from_config` on the meta device and records `params` = sum of numel over
    `model.parameters()` (tied tensors counted once, as transformers reports them);
  * builds it again on the CPU in float32 with random weights, runs one forward pass of `cache_batch` sequences of
    `cache_tokens` tokens with `use_cache=True`, and records, per layer of the returned cache, its class and the
    number of elements of every tensor it holds (`cache_layers`). Windows are larger than `cache_tokens`, so nothing
    is trimmed: an attention layer holds batch × tokens × (elements per token), a convolution layer its fixed state.

Output: {"config": ..., "params": N, "cache_batch": B, "cache_tokens": T, "cache_layers": [...], "source": ...}.
tests/test_arch_families.py compares vram.model.model_from_config against these numbers.

It also counts the catalog's speech, vision-language and embedding entries (Whisper, Qwen2.5-VL, BERT/XLM-R) with
the transformers class their checkpoints load into, and the diffusion entries' denoisers (FLUX, SD3.5, SDXL UNet)
with diffusers, into tests/data/arch/_catalog_counts.json, which tests/test_catalog.py checks `params` against.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import transformers

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "arch"
CACHE_BATCH = 2
CACHE_TOKENS = 5

# Shapes are small but deliberately unequal (vocab 101, intermediate 88, head_dim 24 where explicit) so that a
# formula that swaps two sizes cannot pass by accident.
BASE: dict[str, Any] = {
    "hidden_size": 64, "intermediate_size": 88, "num_hidden_layers": 3, "num_attention_heads": 4,
    "vocab_size": 101, "max_position_embeddings": 256,
}


DROP = object()  # leave a BASE key out of the config


def cfg(model_type: str, arch: str, **over: Any) -> dict[str, Any]:
    d = {"model_type": model_type, "architectures": [arch], **BASE, **over}
    return {k: v for k, v in d.items() if v is not DROP}


MOE = {"moe_intermediate_size": 40, "num_experts_per_tok": 2}

VARIANTS: dict[str, dict[str, Any]] = {
    # Llama: GQA / MQA / MHA, explicit head_dim, tied, biases
    "llama_gqa": cfg("llama", "LlamaForCausalLM", num_key_value_heads=2, tie_word_embeddings=False),
    "llama_mqa_tied": cfg("llama", "LlamaForCausalLM", num_key_value_heads=1, tie_word_embeddings=True),
    "llama_mha_default_kv": cfg("llama", "LlamaForCausalLM", tie_word_embeddings=False),
    "llama_head_dim": cfg("llama", "LlamaForCausalLM", num_key_value_heads=2, head_dim=24),
    "llama_bias": cfg("llama", "LlamaForCausalLM", num_key_value_heads=2, attention_bias=True, mlp_bias=True),
    "llama_4_layers_odd": cfg("llama", "LlamaForCausalLM", num_hidden_layers=4, num_attention_heads=8,
                              num_key_value_heads=8, hidden_size=96, intermediate_size=136),
    # Mistral: sliding window on every layer, or none
    "mistral_sliding": cfg("mistral", "MistralForCausalLM", num_key_value_heads=2, sliding_window=8, head_dim=24),
    "mistral_no_window": cfg("mistral", "MistralForCausalLM", num_key_value_heads=2, sliding_window=None),
    # Qwen2: q/k/v bias; sliding window above max_window_layers
    "qwen2": cfg("qwen2", "Qwen2ForCausalLM", num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2_untied": cfg("qwen2", "Qwen2ForCausalLM", num_key_value_heads=1, tie_word_embeddings=False),
    "qwen2_sliding_layers": cfg("qwen2", "Qwen2ForCausalLM", num_key_value_heads=2, use_sliding_window=True,
                                sliding_window=8, max_window_layers=1),
    # Qwen3: q/k norms, explicit head_dim
    "qwen3": cfg("qwen3", "Qwen3ForCausalLM", num_key_value_heads=2, head_dim=24, tie_word_embeddings=True),
    "qwen3_untied_bias": cfg("qwen3", "Qwen3ForCausalLM", num_key_value_heads=2, head_dim=24,
                             attention_bias=True, tie_word_embeddings=False),
    # Gemma 2 / 3: four norms per layer, local/global pattern
    "gemma2": cfg("gemma2", "Gemma2ForCausalLM", num_key_value_heads=2, head_dim=24, sliding_window=8,
                  num_hidden_layers=4),
    "gemma3_text_pattern": cfg("gemma3_text", "Gemma3ForCausalLM", num_key_value_heads=2, head_dim=24,
                               sliding_window=8, num_hidden_layers=7, sliding_window_pattern=3),
    "gemma3_text_layer_types": cfg("gemma3_text", "Gemma3ForCausalLM", num_key_value_heads=1, head_dim=16,
                                   sliding_window=8, num_hidden_layers=3,
                                   layer_types=["full_attention", "sliding_attention", "full_attention"]),
    # Phi-3: fused qkv and gate_up
    "phi3": cfg("phi3", "Phi3ForCausalLM", num_key_value_heads=2, tie_word_embeddings=False, pad_token_id=0),
    "phi3_mha_sliding": cfg("phi3", "Phi3ForCausalLM", sliding_window=8, pad_token_id=0),
    # OLMo 2: post-norms and full-width q/k norms
    "olmo2": cfg("olmo2", "Olmo2ForCausalLM", num_key_value_heads=2),
    "olmo2_mha": cfg("olmo2", "Olmo2ForCausalLM", tie_word_embeddings=True),
    # Cohere: parallel block, one LayerNorm, optional q/k norms
    "cohere": cfg("cohere", "CohereForCausalLM", num_key_value_heads=2, use_qk_norm=False),
    "cohere_qk_norm": cfg("cohere", "CohereForCausalLM", num_key_value_heads=2, use_qk_norm=True),
    # Mixtral
    "mixtral": cfg("mixtral", "MixtralForCausalLM", num_key_value_heads=2, num_local_experts=4,
                   num_experts_per_tok=2, sliding_window=None),
    "mixtral_sliding": cfg("mixtral", "MixtralForCausalLM", num_key_value_heads=2, num_local_experts=3,
                           num_experts_per_tok=1, sliding_window=8),
    # Qwen2-MoE: shared expert with its gate, sparse step, mlp-only layers
    "qwen2_moe": cfg("qwen2_moe", "Qwen2MoeForCausalLM", num_key_value_heads=2, num_experts=4,
                     shared_expert_intermediate_size=56, **MOE),
    "qwen2_moe_sparse_step": cfg("qwen2_moe", "Qwen2MoeForCausalLM", num_hidden_layers=4, num_key_value_heads=2,
                                 num_experts=4, shared_expert_intermediate_size=56, decoder_sparse_step=2,
                                 mlp_only_layers=[3], **MOE),
    # Qwen3-MoE: q/k norms, no shared expert, mlp-only layers
    "qwen3_moe": cfg("qwen3_moe", "Qwen3MoeForCausalLM", num_key_value_heads=2, head_dim=24, num_experts=4, **MOE),
    "qwen3_moe_mlp_only": cfg("qwen3_moe", "Qwen3MoeForCausalLM", num_hidden_layers=4, num_key_value_heads=2,
                              num_experts=5, mlp_only_layers=[0, 2], decoder_sparse_step=1, **MOE),
    # PhiMoE: LayerNorms with bias, attention bias, lm_head bias
    "phimoe": cfg("phimoe", "PhimoeForCausalLM", num_key_value_heads=2, num_local_experts=4,
                  num_experts_per_tok=2),
    "phimoe_lm_head_bias": cfg("phimoe", "PhimoeForCausalLM", num_key_value_heads=2, num_local_experts=3,
                               num_experts_per_tok=2, lm_head_bias=True, attention_bias=False),
    # DeepSeek: multi-head latent attention, shared experts, dense first layers
    "deepseek_v2_no_q_lora": cfg("deepseek_v2", "DeepseekV2ForCausalLM", q_lora_rank=None, kv_lora_rank=32,
                                 qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=4,
                                 n_shared_experts=2, num_experts_per_tok=2, moe_intermediate_size=40,
                                 first_k_dense_replace=1, topk_method="greedy"),
    "deepseek_v2_q_lora": cfg("deepseek_v2", "DeepseekV2ForCausalLM", q_lora_rank=48, kv_lora_rank=32,
                              qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=4,
                              n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=40,
                              first_k_dense_replace=0, topk_method="greedy"),
    "deepseek_v3": cfg("deepseek_v3", "DeepseekV3ForCausalLM", q_lora_rank=48, kv_lora_rank=32,
                       qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=8,
                       n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=40,
                       first_k_dense_replace=1, n_group=2, topk_group=1),
    "deepseek_v3_no_q_lora": cfg("deepseek_v3", "DeepseekV3ForCausalLM", q_lora_rank=None, kv_lora_rank=32,
                                 qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=4,
                                 n_shared_experts=2, num_experts_per_tok=2, moe_intermediate_size=40,
                                 first_k_dense_replace=2, n_group=1, topk_group=1),
    # gpt-oss: attention sinks, biased experts, alternating sliding/full layers
    "gpt_oss": cfg("gpt_oss", "GptOssForCausalLM", num_key_value_heads=2, head_dim=24, num_local_experts=4,
                   num_experts_per_tok=2, intermediate_size=40, sliding_window=8, num_hidden_layers=4),
    # LFM2: short-convolution layers with a fixed state, ff dim auto-adjusted or not
    "lfm2_auto_ff": cfg("lfm2", "Lfm2ForCausalLM", num_key_value_heads=2, block_ff_dim=200,
                        block_auto_adjust_ff_dim=True, block_ffn_dim_multiplier=1.0, block_multiple_of=32,
                        num_hidden_layers=4, layer_types=["conv", "full_attention", "conv", "full_attention"]),
    "lfm2_auto_ff_multiplier": cfg("lfm2", "Lfm2ForCausalLM", num_key_value_heads=2, block_ff_dim=200,
                                   block_auto_adjust_ff_dim=True, block_ffn_dim_multiplier=1.5,
                                   block_multiple_of=48, full_attn_idxs=[2], conv_L_cache=4),
    "lfm2_fixed_ff": cfg("lfm2", "Lfm2ForCausalLM", num_key_value_heads=1, block_ff_dim=96,
                         intermediate_size=96, block_auto_adjust_ff_dim=False, conv_bias=True,
                         layer_types=["conv", "conv", "full_attention"]),
    # Falcon: old (multi-query, parallel attention), old non-parallel MHA, new decoder architecture
    "falcon_old_mqa_parallel": cfg("falcon", "FalconForCausalLM", multi_query=True, parallel_attn=True,
                                   new_decoder_architecture=False, bias=False, alibi=False, ffn_hidden_size=120),
    "falcon_old_mha_sequential_bias": cfg("falcon", "FalconForCausalLM", multi_query=False, parallel_attn=False,
                                          new_decoder_architecture=False, bias=True, alibi=False,
                                          ffn_hidden_size=256),
    "falcon_default_ffn": cfg("falcon", "FalconForCausalLM", multi_query=True, parallel_attn=True,
                              new_decoder_architecture=False, bias=False, alibi=False),
    "falcon_new_arch": cfg("falcon", "FalconForCausalLM", new_decoder_architecture=True, num_kv_heads=2,
                           bias=False, alibi=False, ffn_hidden_size=120),
    "falcon_new_arch_one_ln": cfg("falcon", "FalconForCausalLM", new_decoder_architecture=True, num_kv_heads=2,
                                  num_ln_in_parallel_attn=1, bias=False, alibi=False, ffn_hidden_size=256),
    # State-space models: no attention, a fixed conv + SSM state per sequence
    "mamba": cfg("mamba", "MambaForCausalLM", num_attention_heads=DROP, intermediate_size=DROP, state_size=8,
                 conv_kernel=4, expand=2, time_step_rank="auto"),
    "mamba_bias_rank": cfg("mamba", "MambaForCausalLM", num_attention_heads=DROP, intermediate_size=DROP,
                           state_size=16, conv_kernel=3, expand=3, time_step_rank=6, use_bias=True,
                           use_conv_bias=False, tie_word_embeddings=False),
    "falcon_mamba": cfg("falcon_mamba", "FalconMambaForCausalLM", num_attention_heads=DROP, intermediate_size=DROP,
                        state_size=8, conv_kernel=4, expand=2),
    "mamba2": cfg("mamba2", "Mamba2ForCausalLM", num_attention_heads=DROP, intermediate_size=DROP, num_heads=8,
                  head_dim=16, expand=2, n_groups=2, state_size=16, conv_kernel=4, chunk_size=4),
    "mamba2_bias_untied": cfg("mamba2", "Mamba2ForCausalLM", num_attention_heads=DROP, intermediate_size=DROP,
                              num_heads=4, head_dim=32, expand=2, n_groups=1, state_size=8, conv_kernel=3,
                              use_bias=True, use_conv_bias=False, tie_word_embeddings=False, chunk_size=4),
    # More dense families: GPT-NeoX (parallel residual, partial rotary), OLMo (non-parametric LayerNorm), Phi-1/2,
    # StableLM, StarCoder2 (biased plain MLP, sliding window), SmolLM3, Granite
    "gpt_neox": cfg("gpt_neox", "GPTNeoXForCausalLM", rotary_pct=0.25, use_parallel_residual=True),
    "gpt_neox_sequential_tied": cfg("gpt_neox", "GPTNeoXForCausalLM", rotary_pct=1.0, use_parallel_residual=False,
                                    tie_word_embeddings=True),
    "gpt_neox_no_attention_bias": cfg("gpt_neox", "GPTNeoXForCausalLM", attention_bias=False),
    "olmo": cfg("olmo", "OlmoForCausalLM", num_key_value_heads=2, clip_qkv=8.0, pad_token_id=0, eos_token_id=1),
    "olmo_tied_bias": cfg("olmo", "OlmoForCausalLM", tie_word_embeddings=True, attention_bias=True, pad_token_id=0,
                          eos_token_id=1),
    "olmoe": cfg("olmoe", "OlmoeForCausalLM", num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                 pad_token_id=0, eos_token_id=1),
    "phi": cfg("phi", "PhiForCausalLM", partial_rotary_factor=0.5, qk_layernorm=False),
    "phi_qk_layernorm_gqa": cfg("phi", "PhiForCausalLM", num_key_value_heads=2, partial_rotary_factor=0.4,
                                qk_layernorm=True, tie_word_embeddings=True),
    "stablelm": cfg("stablelm", "StableLmForCausalLM", num_key_value_heads=2, partial_rotary_factor=0.25,
                    use_qkv_bias=True, qk_layernorm=False, use_parallel_residual=False),
    "stablelm_qk_norm_parallel": cfg("stablelm", "StableLmForCausalLM", num_key_value_heads=4,
                                     use_qkv_bias=False, qk_layernorm=True, use_parallel_residual=True),
    "starcoder2": cfg("starcoder2", "Starcoder2ForCausalLM", num_key_value_heads=2, use_bias=True,
                      sliding_window=8),
    "starcoder2_no_bias_no_window": cfg("starcoder2", "Starcoder2ForCausalLM", num_key_value_heads=1,
                                        use_bias=False, sliding_window=None, tie_word_embeddings=False),
    "smollm3": cfg("smollm3", "SmolLM3ForCausalLM", num_key_value_heads=2, no_rope_layer_interval=2,
                   pad_token_id=0, bos_token_id=None, eos_token_id=1),
    "granite": cfg("granite", "GraniteForCausalLM", num_key_value_heads=2, embedding_multiplier=12.0,
                   residual_multiplier=0.22, logits_scaling=8.0, attention_multiplier=0.015625),
    # published Qwen3-MoE and gpt-oss configs spell these out; the variants above also check the defaults
    "qwen3_moe_128_experts": cfg("qwen3_moe", "Qwen3MoeForCausalLM", hidden_size=32, num_key_value_heads=2,
                                 head_dim=24, num_experts=128, num_hidden_layers=4, mlp_only_layers=[1],
                                 moe_intermediate_size=24, num_experts_per_tok=8),
    # 2025-2026 dense families: Apertus (xIELU, q/k norms), Seed-OSS (q/k/v bias, no o bias), ERNIE 4.5, Hunyuan
    # (q/k norms), OLMo 3 (OLMo 2 norms, sliding/full pattern)
    "apertus": cfg("apertus", "ApertusForCausalLM", num_key_value_heads=2, hidden_act="xielu"),
    "seed_oss": cfg("seed_oss", "SeedOssForCausalLM", num_key_value_heads=2, head_dim=24, attention_bias=True,
                    attention_out_bias=False),
    "ernie4_5": cfg("ernie4_5", "Ernie4_5ForCausalLM", num_key_value_heads=2, head_dim=24, use_bias=False,
                    tie_word_embeddings=True),
    "ernie4_5_bias_untied": cfg("ernie4_5", "Ernie4_5ForCausalLM", num_key_value_heads=2, use_bias=True,
                                tie_word_embeddings=False),
    "hunyuan_v1_dense": cfg("hunyuan_v1_dense", "HunYuanDenseV1ForCausalLM", num_key_value_heads=2, head_dim=24),
    "olmo3": cfg("olmo3", "Olmo3ForCausalLM", num_key_value_heads=2, sliding_window=8, num_hidden_layers=4,
                 pad_token_id=0, eos_token_id=1),
    # 2025-2026 MoE families
    "glm4_moe": cfg("glm4_moe", "Glm4MoeForCausalLM", num_key_value_heads=2, head_dim=24, n_routed_experts=4,
                    n_shared_experts=1, first_k_dense_replace=1, partial_rotary_factor=0.5, **MOE),
    "glm4_moe_qk_norm_bias": cfg("glm4_moe", "Glm4MoeForCausalLM", num_key_value_heads=2, n_routed_experts=5,
                                 n_shared_experts=2, first_k_dense_replace=0, use_qk_norm=True,
                                 attention_bias=True, **MOE),
    "ernie4_5_moe": cfg("ernie4_5_moe", "Ernie4_5_MoeForCausalLM", num_hidden_layers=4, num_key_value_heads=2,
                        moe_intermediate_size=40, moe_k=2, moe_num_experts=4, moe_num_shared_experts=2,
                        moe_layer_start_index=1, moe_layer_end_index=3, moe_layer_interval=1),
    "hunyuan_v1_moe": cfg("hunyuan_v1_moe", "HunYuanMoEV1ForCausalLM", num_key_value_heads=2, head_dim=24,
                          num_experts=4, moe_topk=2),
    "minimax_m2": cfg("minimax_m2", "MiniMaxM2ForCausalLM", num_key_value_heads=2, head_dim=24,
                      intermediate_size=40, num_local_experts=4, num_experts_per_tok=2),
    # MLA families: Kimi-K2 (DeepSeek-V3's network under its own model_type), GLM-4.7-Flash (MLA + MoE),
    # DeepSeek-V3.2 and GLM-5 (DeepSeek sparse attention: an indexer with its own key cache)
    "kimi_k2": cfg("kimi_k2", "DeepseekV3ForCausalLM", q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
                   qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=6, n_shared_experts=1, num_experts_per_tok=2,
                   moe_intermediate_size=40, first_k_dense_replace=1, n_group=1, topk_group=1),
    "glm4_moe_lite": cfg("glm4_moe_lite", "Glm4MoeLiteForCausalLM", q_lora_rank=48, kv_lora_rank=32,
                         qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=4,
                         n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=40,
                         mlp_layer_types=["dense", "sparse", "sparse"]),
    "deepseek_v32": cfg("deepseek_v32", "DeepseekV32ForCausalLM", q_lora_rank=48, kv_lora_rank=32,
                        qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=4,
                        n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=40, n_group=1,
                        topk_group=1, first_k_dense_replace=1, index_n_heads=4, index_head_dim=16, index_topk=4,
                        mlp_layer_types=["dense", "sparse", "sparse"]),
    "glm_moe_dsa": cfg("glm_moe_dsa", "GlmMoeDsaForCausalLM", q_lora_rank=48, kv_lora_rank=32,
                       qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=20, n_routed_experts=4,
                       n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=40, first_k_dense_replace=1,
                       index_n_heads=2, index_head_dim=24, index_topk=4, mlp_layer_types=["dense", "sparse", "sparse"]),
    # gated DeltaNet hybrids: Qwen3-Next (MoE with a gated shared expert), Qwen3.5 dense and MoE; linear-attention
    # layers keep a conv state and a recurrent state per sequence, the full-attention layers a gated-q KV cache
    "qwen3_next": cfg("qwen3_next", "Qwen3NextForCausalLM", num_hidden_layers=4, num_key_value_heads=2, head_dim=24,
                      linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=12,
                      linear_num_key_heads=2, linear_num_value_heads=4, num_experts=4,
                      shared_expert_intermediate_size=56, partial_rotary_factor=0.25, **MOE),
    "qwen3_next_mlp_only": cfg("qwen3_next", "Qwen3NextForCausalLM", num_hidden_layers=3, num_key_value_heads=2,
                               head_dim=16, linear_conv_kernel_dim=3, linear_key_head_dim=8, linear_value_head_dim=16,
                               linear_num_key_heads=2, linear_num_value_heads=2, num_experts=3,
                               shared_expert_intermediate_size=24, mlp_only_layers=[1],
                               layer_types=["linear_attention", "full_attention", "linear_attention"], **MOE),
    "qwen3_5_text": cfg("qwen3_5_text", "Qwen3_5ForCausalLM", num_hidden_layers=4, num_key_value_heads=2,
                        head_dim=24, linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=12,
                        linear_num_key_heads=2, linear_num_value_heads=4),
    "qwen3_5_moe_text": cfg("qwen3_5_moe_text", "Qwen3_5MoeForCausalLM", num_hidden_layers=4, num_key_value_heads=2,
                            head_dim=24, linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=12,
                            linear_num_key_heads=2, linear_num_value_heads=4, num_experts=4,
                            shared_expert_intermediate_size=56, **MOE),
    # Mamba-2 hybrids: Granite 4 (Mamba-2 + attention layers, each with a MoE and/or shared MLP), Nemotron-H (one
    # block per layer: Mamba-2, attention, MLP or MoE), Falcon-H1 (attention and Mamba-2 in parallel in every layer)
    "granitemoehybrid": cfg("granitemoehybrid", "GraniteMoeHybridForCausalLM", num_hidden_layers=4,
                            num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                            shared_intermediate_size=56, intermediate_size=40, mamba_n_heads=8, mamba_d_head=16,
                            mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=4,
                            layer_types=["mamba", "attention", "mamba", "mamba"]),
    "granitemoehybrid_dense": cfg("granitemoehybrid", "GraniteMoeHybridForCausalLM", num_hidden_layers=3,
                                  num_key_value_heads=2, num_local_experts=0, shared_intermediate_size=56,
                                  mamba_n_heads=4, mamba_d_head=32, mamba_n_groups=1, mamba_d_state=16,
                                  mamba_d_conv=3, mamba_expand=2, mamba_chunk_size=4, mamba_conv_bias=False,
                                  mamba_proj_bias=True, layer_types=["attention", "mamba", "mamba"]),
    "nemotron_h": cfg("nemotron_h", "NemotronHForCausalLM", num_hidden_layers=6, num_key_value_heads=2,
                      head_dim=16, hybrid_override_pattern="M-M*-E", mamba_num_heads=8, mamba_head_dim=16,
                      n_groups=2, ssm_state_size=8, conv_kernel=4, expand=2, chunk_size=4, n_routed_experts=4,
                      num_experts_per_tok=2, moe_intermediate_size=40, moe_shared_expert_intermediate_size=56,
                      n_shared_experts=1),
    "falcon_h1": cfg("falcon_h1", "FalconH1ForCausalLM", num_key_value_heads=2, head_dim=16, mamba_d_ssm=96,
                     mamba_n_heads=6, mamba_d_head=16, mamba_n_groups=2, mamba_d_state=8, mamba_d_conv=4,
                     mamba_expand=2, mamba_chunk_size=4, mamba_rms_norm=True),
    "falcon_h1_no_d_ssm": cfg("falcon_h1", "FalconH1ForCausalLM", num_key_value_heads=2, mamba_d_ssm=None,
                              mamba_n_heads=8, mamba_d_head=16, mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=3,
                              mamba_expand=2, mamba_chunk_size=4, mamba_rms_norm=False, mamba_conv_bias=False,
                              projectors_bias=True, attention_bias=True, mlp_bias=True, tie_word_embeddings=True),
    # Llama 4: chunked attention on 3 of 4 layers (NoPE on the 4th), MoE with a shared expert interleaved with dense
    # layers (intermediate_size_mlp), q/k L2 norm without weights
    "llama4_text": cfg("llama4_text", "Llama4ForCausalLM", num_hidden_layers=4, num_key_value_heads=2, head_dim=24,
                       intermediate_size=40, intermediate_size_mlp=88, num_local_experts=4, num_experts_per_tok=1,
                       interleave_moe_layer_step=2, attention_chunk_size=8, no_rope_layer_interval=4,
                       use_qk_norm=True),
    "llama4_text_all_moe": cfg("llama4_text", "Llama4ForCausalLM", num_hidden_layers=3, num_key_value_heads=2,
                               intermediate_size=40, intermediate_size_mlp=88, num_local_experts=3,
                               num_experts_per_tok=1, interleave_moe_layer_step=1, attention_chunk_size=8,
                               use_qk_norm=False, attention_bias=True, tie_word_embeddings=False),
    # Kimi-Linear: Kimi delta attention (linear) layers with a conv + recurrent state, MLA full-attention layers,
    # DeepSeek-style MoE
    "kimi_linear": cfg("kimi_linear", "KimiLinearForCausalLM", num_hidden_layers=4, q_lora_rank=None,
                       kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, num_experts=4,
                       num_shared_experts=1, num_experts_per_token=2, moe_intermediate_size=40, linear_head_dim=16,
                       linear_num_heads=4, linear_conv_kernel_dim=4,
                       layer_types=["linear_attention", "linear_attention", "linear_attention", "full_attention"],
                       mlp_layer_types=["dense", "sparse", "sparse", "sparse"], pad_token_id=0, bos_token_id=1,
                       eos_token_id=2),
    # Gemma 3n / Gemma 4: per-layer embeddings, KV-shared last layers (AltUp and LAuReL in Gemma 3n)
    "gemma3n_text": cfg("gemma3n_text", "Gemma3nForCausalLM", num_hidden_layers=5, num_key_value_heads=2, head_dim=24,
                        intermediate_size=[88, 88, 96, 88, 88], sliding_window=8, vocab_size_per_layer_input=90,
                        hidden_size_per_layer_input=16, altup_num_inputs=3, num_kv_shared_layers=2, laurel_rank=8,
                        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                     "sliding_attention", "full_attention"],
                        activation_sparsity_pattern=[0.95, 0.0, 0.0, 0.0, 0.0], pad_token_id=0),
    "gemma4_text": cfg("gemma4_text", "Gemma4ForCausalLM", num_hidden_layers=4, num_key_value_heads=2, head_dim=24,
                       sliding_window=8, vocab_size_per_layer_input=101, hidden_size_per_layer_input=16,
                       layer_types=["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
                       pad_token_id=0),
    "gemma4_text_moe_shared_kv": cfg("gemma4_text", "Gemma4ForCausalLM", num_hidden_layers=6, num_key_value_heads=2,
                                     head_dim=16, global_head_dim=32, num_global_key_value_heads=1,
                                     attention_k_eq_v=True, sliding_window=8, hidden_size_per_layer_input=8,
                                     num_kv_shared_layers=2, use_double_wide_mlp=True, enable_moe_block=True,
                                     num_experts=4, top_k_experts=2, moe_intermediate_size=40,
                                     layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                                  "sliding_attention", "sliding_attention", "full_attention"],
                                     pad_token_id=0),
    # multimodal wrappers: Qwen3-VL (dense and MoE text models with their vision tower and deepstack mergers)
    "qwen3_vl": {"model_type": "qwen3_vl", "architectures": ["Qwen3VLForConditionalGeneration"],
                 "text_config": cfg("qwen3_vl_text", "Qwen3VLForConditionalGeneration", num_key_value_heads=2,
                                    head_dim=24, tie_word_embeddings=False, rope_scaling={"rope_type": "default",
                                    "mrope_section": [4, 4, 4], "mrope_interleaved": True}),
                 "vision_config": {"depth": 3, "hidden_size": 32, "intermediate_size": 56, "num_heads": 2,
                                   "out_hidden_size": 64, "patch_size": 4, "spatial_merge_size": 2,
                                   "temporal_patch_size": 2, "num_position_embeddings": 16,
                                   "deepstack_visual_indexes": [0, 2]},
                 "tie_word_embeddings": False, "num_hidden_layers": 3, "vocab_size": 101},
    "qwen3_vl_moe": {"model_type": "qwen3_vl_moe", "architectures": ["Qwen3VLMoeForConditionalGeneration"],
                     "text_config": cfg("qwen3_vl_moe_text", "Qwen3VLMoeForConditionalGeneration",
                                        num_key_value_heads=2, head_dim=24, num_experts=4, decoder_sparse_step=1,
                                        tie_word_embeddings=True, rope_scaling={"rope_type": "default",
                                        "mrope_section": [4, 4, 4], "mrope_interleaved": True}, **MOE),
                     "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 56, "num_heads": 2,
                                       "out_hidden_size": 64, "patch_size": 4, "spatial_merge_size": 2,
                                       "temporal_patch_size": 2, "num_position_embeddings": 16,
                                       "deepstack_visual_indexes": [1]},
                     "tie_word_embeddings": True, "num_hidden_layers": 3, "vocab_size": 101},
    "qwen3_5": {"model_type": "qwen3_5", "architectures": ["Qwen3_5ForConditionalGeneration"],
                "text_config": cfg("qwen3_5_text", "Qwen3_5ForConditionalGeneration", num_hidden_layers=4,
                                   num_key_value_heads=2, head_dim=24, linear_conv_kernel_dim=4, linear_key_head_dim=16,
                                   linear_value_head_dim=12, linear_num_key_heads=2, linear_num_value_heads=4),
                "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 56, "num_heads": 2,
                                  "out_hidden_size": 64, "patch_size": 4, "spatial_merge_size": 2,
                                  "temporal_patch_size": 2, "num_position_embeddings": 16},
                "tie_word_embeddings": False, "num_hidden_layers": 4, "vocab_size": 101},
    "llama4": {"model_type": "llama4", "architectures": ["Llama4ForConditionalGeneration"],
               "text_config": cfg("llama4_text", "Llama4ForConditionalGeneration", num_hidden_layers=4,
                                  num_key_value_heads=2, head_dim=24, intermediate_size=40, intermediate_size_mlp=88,
                                  num_local_experts=4, num_experts_per_tok=1, interleave_moe_layer_step=2,
                                  attention_chunk_size=8, use_qk_norm=True),
               "vision_config": {"hidden_size": 32, "intermediate_size": 56, "num_hidden_layers": 2,
                                 "num_attention_heads": 2, "image_size": 32, "patch_size": 8, "num_channels": 3,
                                 "vision_output_dim": 48, "projector_input_dim": 40, "projector_output_dim": 40,
                                 "pixel_shuffle_ratio": 0.5},
               "num_hidden_layers": 4, "vocab_size": 101},
    # multimodal wrappers whose towers vram counts: Kimi-K2.5 (MoonViT), Gemma 4, Mistral 3 (Pixtral), LFM2-VL
    # (SigLIP 2), GLM-4.5V
    "kimi_k25": {"model_type": "kimi_k25", "architectures": ["Kimi_K25ForConditionalGeneration"],
                 "text_config": cfg("kimi_k2", "DeepseekV3ForCausalLM", q_lora_rank=48, kv_lora_rank=32,
                                    qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=12, n_routed_experts=4,
                                    n_shared_experts=1, num_experts_per_tok=2, moe_intermediate_size=40,
                                    first_k_dense_replace=1, n_group=1, topk_group=1, tie_word_embeddings=False),
                 "vision_config": {"hidden_size": 32, "intermediate_size": 56, "num_hidden_layers": 2,
                                   "num_attention_heads": 2, "patch_size": 4, "pos_emb_height": 6,
                                   "pos_emb_width": 5, "merge_kernel_size": [2, 2]},
                 "projection_hidden_size": 32, "tie_word_embeddings": False, "num_hidden_layers": 3,
                 "vocab_size": 101},
    "gemma4": {"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"],
               "text_config": cfg("gemma4_text", "Gemma4ForCausalLM", num_key_value_heads=2, head_dim=16,
                                  global_head_dim=32, sliding_window=8, hidden_size_per_layer_input=8,
                                  layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                  pad_token_id=0),
               "vision_config": {"hidden_size": 32, "intermediate_size": 56, "num_hidden_layers": 2,
                                 "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                                 "global_head_dim": 16, "patch_size": 4, "position_embedding_size": 20,
                                 "pooling_kernel_size": 2},
               "audio_config": None, "num_hidden_layers": 3, "vocab_size": 101},
    "gemma4_audio": {"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"],
                     "text_config": cfg("gemma4_text", "Gemma4ForCausalLM", num_key_value_heads=2, head_dim=16,
                                        global_head_dim=32, sliding_window=8, hidden_size_per_layer_input=8,
                                        vocab_size_per_layer_input=101,
                                        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
                                        pad_token_id=0),
                     "vision_config": {"hidden_size": 32, "intermediate_size": 56, "num_hidden_layers": 1,
                                       "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                                       "global_head_dim": 16, "patch_size": 4, "position_embedding_size": 20,
                                       "pooling_kernel_size": 2},
                     "audio_config": {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                                      "subsampling_conv_channels": [16, 8], "conv_kernel_size": 3,
                                      "output_proj_dims": 40},
                     "num_hidden_layers": 3, "vocab_size": 101},
    "mistral3": {"model_type": "mistral3", "architectures": ["Mistral3ForConditionalGeneration"],
                 "text_config": cfg("mistral", "MistralForCausalLM", num_key_value_heads=2, head_dim=24,
                                    sliding_window=None, tie_word_embeddings=False),
                 "vision_config": {"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 56,
                                   "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 16,
                                   "patch_size": 4, "image_size": 32},
                 "spatial_merge_size": 2, "vision_feature_layer": -1, "multimodal_projector_bias": True,
                 "tie_word_embeddings": False, "num_hidden_layers": 3, "vocab_size": 101},
    "lfm2_vl": {"model_type": "lfm2_vl", "architectures": ["Lfm2VlForConditionalGeneration"],
                "text_config": cfg("lfm2", "Lfm2ForCausalLM", num_key_value_heads=2, block_ff_dim=96,
                                   intermediate_size=96, block_auto_adjust_ff_dim=False,
                                   layer_types=["conv", "full_attention", "conv"]),
                "vision_config": {"model_type": "siglip2_vision_model", "hidden_size": 32, "intermediate_size": 56,
                                  "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 4,
                                  "num_patches": 16, "vision_use_head": False},
                "downsample_factor": 2, "projector_hidden_size": 40, "projector_bias": True,
                "projector_use_layernorm": True, "num_hidden_layers": 3, "vocab_size": 101},
    "glm4v_moe": {"model_type": "glm4v_moe", "architectures": ["Glm4vMoeForConditionalGeneration"],
                  "text_config": cfg("glm4v_moe_text", "Glm4vMoeForConditionalGeneration", num_key_value_heads=2,
                                     head_dim=16, n_routed_experts=4, n_shared_experts=1, first_k_dense_replace=1,
                                     attention_bias=True, tie_word_embeddings=False,
                                     rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2],
                                                      "partial_rotary_factor": 0.5, "rope_theta": 10000.0}, **MOE),
                  "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 56, "num_heads": 2,
                                    "out_hidden_size": 64, "patch_size": 4, "image_size": 16, "spatial_merge_size": 2,
                                    "temporal_patch_size": 2},
                  "tie_word_embeddings": False, "num_hidden_layers": 3, "vocab_size": 101},
    "gpt_oss_layer_types": cfg("gpt_oss", "GptOssForCausalLM", num_key_value_heads=1, head_dim=16,
                               num_local_experts=3, num_experts_per_tok=1, intermediate_size=40, sliding_window=8,
                               layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
}


def _tensors(obj: Any) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, list | tuple):
        for x in obj:
            out.extend(_tensors(x))
    elif isinstance(obj, dict):
        for x in obj.values():
            out.extend(_tensors(x))
    return out


def cache_layers(cache: Any) -> list[dict[str, Any]]:
    """Per cache layer: its class and the elements of every tensor it holds (0-d counters left out)."""
    rows = []
    for layer in cache.layers:
        elems = sum(t.numel() for value in vars(layer).values() for t in _tensors(value) if t.dim() > 0)
        rows.append({"class": type(layer).__name__, "elems": elems})
    return rows


def model_class(config: dict[str, Any]) -> Any:
    return getattr(transformers, config["architectures"][0])


# model_types whose checkpoints ship remote code that is another model's network: built with that model's class
BUILT_AS = {"kimi_k2": "deepseek_v3"}


def build_config(config: dict[str, Any]) -> Any:
    d = dict(config)
    mt = d.pop("model_type")
    return transformers.AutoConfig.for_model(BUILT_AS.get(mt, mt), **d)


def measure(config: dict[str, Any]) -> dict[str, Any]:
    cls = model_class(config)
    with torch.device("meta"):
        model = cls(build_config(config))
    params = sum(p.numel() for p in model.parameters())
    del model
    torch.manual_seed(0)
    model = cls(build_config(config)).eval()
    ids = torch.randint(1, config["vocab_size"], (CACHE_BATCH, CACHE_TOKENS))
    with torch.no_grad():
        try:
            out = model(input_ids=ids, use_cache=True)
        except AttributeError:  # Llama 4's wrapper (transformers 5.24) fails a text-only forward: run its LM
            lm = getattr(model, "language_model", None) or getattr(model.model, "language_model")
            out = lm(input_ids=ids, use_cache=True)
    return {"params": params, "cache_batch": CACHE_BATCH, "cache_tokens": CACHE_TOKENS,
            "cache_layers": cache_layers(getattr(out, "past_key_values", None) or out.cache_params)}


CATALOG = ROOT / "src" / "vram" / "catalog" / "data" / "models"
# catalog entries that are not decoder-only LLMs: the transformers class their checkpoints load into
NON_LLM_CLASSES = {"bert": "BertModel", "xlm-roberta": "XLMRobertaModel"}


DIFFUSERS_CLASSES = {"flux_transformer": "FluxTransformer2DModel", "sd3_transformer": "SD3Transformer2DModel",
                     "unet": "UNet2DConditionModel"}


def _diffusion_count(entry: dict[str, Any]) -> dict[str, Any]:
    """The denoiser of a diffusion pipeline (what the catalog's `params` counts), built with diffusers."""
    import diffusers

    config = entry["config"]
    denoiser = dict(config["components"][config["denoiser"]])
    cls_name = DIFFUSERS_CLASSES[denoiser.pop("type")]
    with torch.device("meta"):
        model = getattr(diffusers, cls_name)(**denoiser)
    return {"class": f"diffusers.{cls_name}", "params": sum(p.numel() for p in model.parameters())}


def catalog_counts() -> dict[str, Any]:
    """Parameter counts of the catalog's speech / vision-language / embedding entries, built from their catalog
    config with transformers on the meta device, and of the diffusion entries' denoisers with diffusers (skipped,
    with a message, when diffusers is not installed)."""
    counts: dict[str, Any] = {}
    for path in sorted(CATALOG.glob("*.json")):
        entry = json.loads(path.read_text())
        if entry.get("kind", "llm") == "llm":
            continue
        if entry["kind"] == "diffusion":
            try:
                counts[entry["id"]] = _diffusion_count(entry)
            except ImportError:
                print(f"catalog {entry['id']}: diffusers not installed, not counted", file=sys.stderr)
                continue
            print(f"catalog {entry['id']:28s} {counts[entry['id']]['class']:40s} {counts[entry['id']]['params']:>14,}")
            continue
        config = dict(entry["config"])
        model_type = config.pop("model_type")
        archs = config.pop("architectures", None)
        head = config.pop("head", None)
        cls_name = archs[0] if archs else NON_LLM_CLASSES[model_type]
        if head == "classifier":
            cls_name = cls_name.replace("Model", "ForSequenceClassification")
        with torch.device("meta"):
            model = getattr(transformers, cls_name)(transformers.AutoConfig.for_model(model_type, **config))
        counts[entry["id"]] = {"class": cls_name, "params": sum(p.numel() for p in model.parameters())}
        print(f"catalog {entry['id']:28s} {cls_name:40s} {counts[entry['id']]['params']:>14,}")
    return counts


# keys a config class derives per layer in __post_init__ (vram.model derives them the same way from the config)
DERIVED_KEYS = {"layer_types", "mlp_layer_types", "moe_layers", "no_rope_layers", "activation_sparsity_pattern",
                "layers_block_type", "per_layer_config", "mtp_layers_block_type"}
DEFAULTS = ROOT / "src" / "vram" / "model_defaults.json"


def write_defaults(model_types: list[str]) -> None:
    """Add the defaults of these model_types' config classes to src/vram/model_defaults.json (existing entries
    are kept: they were written by the transformers version named in its _source)."""
    data = json.loads(DEFAULTS.read_text())
    skip = {"transformers_version", "architectures", "_name_or_path", "id2label", "label2id", "dtype",
            "output_hidden_states", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder", "problem_type",
            "tokenizer_class", "output_attentions", "torchscript", "tie_encoder_decoder", "add_cross_attention",
            "cross_attention_hidden_size", "prefix", "task_specific_params", "finetuning_task", "tf_legacy_loss",
            "use_bfloat16", "pruned_heads", "model_type", "initializer_range", *DERIVED_KEYS}
    for mt in model_types:
        if mt in data:
            continue
        d = transformers.AutoConfig.for_model(mt).to_dict()
        data[mt] = {k: v for k, v in sorted(d.items()) if k not in skip and not k.endswith("_token_id")
                    and not isinstance(v, dict) and v != float("inf")}
    data["_source"] = (f"defaults of transformers configuration classes (5.17 for the first 28 model types, "
                       f"{transformers.__version__} for those added later; used only for keys a config.json "
                       "leaves out)")
    DEFAULTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="variant names to (re)write")
    ap.add_argument("--no-catalog", action="store_true", help="skip counting the catalog's non-LLM entries")
    ap.add_argument("--defaults", nargs="*", help="model_types whose config defaults to add to model_defaults.json")
    a = ap.parse_args()
    if a.defaults:
        write_defaults(a.defaults)
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    names = a.only or list(VARIANTS)
    failed = []
    for name in names:
        config = VARIANTS[name]
        try:
            m = measure(config)
        except Exception as exc:  # report and carry on: one broken variant should not hide the others
            failed.append(name)
            print(f"{name:34s} FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        doc = {"config": config, **m,
               "source": f"transformers {transformers.__version__} meta-device count; cache from a CPU forward "
                         f"(torch {torch.__version__.split('+')[0]})"}
        (OUT / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name:34s} params {m['params']:>9,}  cache {[r['elems'] for r in m['cache_layers']]}")
    if not a.no_catalog:
        try:
            import diffusers

            with_diffusers = f" / diffusers {diffusers.__version__}"
        except ImportError:
            with_diffusers = ""
        doc = {"counts": catalog_counts(),
               "source": f"transformers {transformers.__version__}{with_diffusers} meta-device count of the catalog "
                         "config"}
        (OUT / "_catalog_counts.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
