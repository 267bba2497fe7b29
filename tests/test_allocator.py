"""The caching-allocator replay follows PyTorch's rules (c10/cuda/CUDACachingAllocator.cpp), checked case by case."""

from __future__ import annotations

from vram.components.allocator import MIB, CachingAllocator, round_size, segment_size


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
