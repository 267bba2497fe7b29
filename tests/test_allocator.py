"""The caching-allocator replay follows PyTorch's rules (c10/cuda/CUDACachingAllocator.cpp), checked case by case."""

from __future__ import annotations

import json
from pathlib import Path

from vram import model_from_config
from vram.components.allocator import MIB, CachingAllocator, round_size, segment_size
from vram.model import ModelSpec


def test_requests_round_to_512_bytes() -> None:
    assert round_size(1) == 512
    assert round_size(512) == 512
    assert round_size(513) == 1024
    assert round_size(3 * MIB + 1) == 3 * MIB + 512


def test_segment_sizes_by_pool() -> None:
    assert segment_size(1 * MIB) == 2 * MIB  # small pool
    assert segment_size(1 * MIB + 512) == 20 * MIB  # large, under 10 MiB
    assert segment_size(10 * MIB) == 10 * MIB  # 10 MiB and over: rounded up to 2 MiB
    assert segment_size(11 * MIB) == 12 * MIB


def test_a_freed_block_serves_a_smaller_request_and_is_split() -> None:
    al = CachingAllocator()
    a = al.allocate(100 * MIB)
    al.free(a)
    b = al.allocate(60 * MIB)
    assert al.reserved == 100 * MIB and al.allocated == 60 * MIB
    c = al.allocate(40 * MIB)  # the 40 MiB tail of the split block
    assert al.reserved == 100 * MIB and al.allocated == 100 * MIB
    al.free(b)
    al.free(c)  # both halves merge again: one free 100 MiB block
    d = al.allocate(100 * MIB)
    assert al.reserved == 100 * MIB
    al.free(d)


def test_a_larger_request_than_any_cached_block_takes_a_new_segment() -> None:
    al = CachingAllocator()
    x = al.allocate(100 * MIB)
    y = al.allocate(50 * MIB)
    al.free(x)
    al.free(y)  # two separate segments: they never merge with each other
    al.allocate(120 * MIB)
    assert al.reserved == 270 * MIB and al.peak_reserved == 270 * MIB
    assert al.peak_allocated == 150 * MIB


def test_best_fit_takes_the_smallest_block_that_fits() -> None:
    al = CachingAllocator()
    big, small = al.allocate(200 * MIB), al.allocate(30 * MIB)
    al.free(big)
    al.free(small)
    al.allocate(25 * MIB)  # from the 30 MiB block, leaving the 200 MiB one whole
    al.allocate(200 * MIB)
    assert al.reserved == 230 * MIB


def test_a_large_block_is_not_split_for_a_remainder_of_one_mib_or_less() -> None:
    al = CachingAllocator()
    a = al.allocate(20 * MIB)
    al.free(a)
    al.allocate(19 * MIB)  # 1 MiB left: the whole block is handed out
    assert al.allocated == 20 * MIB
    al.allocate(512)  # small pool: its own 2 MiB segment
    assert al.reserved == 22 * MIB


# --- parameter blocks -------------------------------------------------------------------------------------------


def _probe_spec(name: str) -> ModelSpec:
    path = Path(__file__).resolve().parent.parent / "measurements" / "configs" / f"{name}.json"
    return model_from_config(json.loads(path.read_text()), name=name)


def test_a_request_with_at_most_1_mib_left_over_keeps_its_whole_block() -> None:
    al = CachingAllocator()
    al.allocate(6912 * 1152 * 2)  # Gemma-3-1B gate_proj, 15.1875 MiB: a 16 MiB segment, 0.8125 MiB would be left
    assert al.reserved == al.allocated == 16 * MIB


def test_parameter_sizes_cover_every_parameter() -> None:
    from vram.components.weights import parameter_sizes

    for name in ("Gemma-3-1B", "Qwen2.5-0.5B", "DeepSeek-V2-Lite", "Mixtral-8x7B", "LFM2-1.2B", "Phi-3-mini-4k"):
        spec = _probe_spec(name)
        assert sum(b for g in parameter_sizes(spec, 2) for b in g) == 2 * spec.params, name


def test_weight_blocks_match_the_h200_and_transformers_build_order() -> None:
    from vram.components.weights import weight_blocks

    # measured beyond parameters + buffers, first model of a process (h200-probe.jsonl / h200-probe3.jsonl):
    # Qwen2.5-0.5B 8,257,024 bytes, StarCoder2-3B-like 4,195,328; transformers' own build order replayed gives
    # Gemma-3-1B 52,849,406 and DeepSeek-V2-Lite 81,789,696; Llama-3.1-8B's tensors are whole 2 MiB multiples (512)
    assert weight_blocks(_probe_spec("Qwen2.5-0.5B"), 2).bytes == 8_243_456
    assert weight_blocks(_probe_spec("StarCoder2-3B-like"), 2).bytes == 4_194_304
    assert weight_blocks(_probe_spec("Gemma-3-1B"), 2).bytes == 52_848_896
    assert weight_blocks(_probe_spec("DeepSeek-V2-Lite"), 2).bytes == 81_788_928
    assert weight_blocks(_probe_spec("Llama-3.1-8B"), 2).bytes == 0
