"""PyTorch's CUDA caching allocator, replayed: what it reserves for a sequence of allocations and frees.

`torch.cuda.max_memory_reserved()` — and so what nvidia-smi shows, less the CUDA context — is not the peak of live
tensors: freed blocks stay cached in the segments they were carved from, and a request that no cached block fits
takes a new segment from the driver even while plenty of smaller free blocks exist. This module replays the rules of
c10/cuda/CUDACachingAllocator.cpp (PyTorch 2.x defaults: no expandable segments, no `max_split_size_mb`, one
stream) on a list of events:

* every request is rounded up to a multiple of 512 bytes;
* requests of at most 1 MiB come from the small pool (2 MiB segments), larger ones from the large pool; a new large
  segment is 20 MiB for requests under 10 MiB and the request rounded up to 2 MiB otherwise;
* a request takes the best-fitting free cached block of its pool (the smallest that is large enough, lowest address
  first), splitting it when the rest is at least 512 bytes (small pool) or more than 1 MiB (large pool);
* a freed block merges with free neighbours of its segment; segments are never returned (no `empty_cache()`).

Reserved memory is the sum of segment sizes; it only grows.
"""

from __future__ import annotations

import bisect

MIB = 1 << 20
ROUND = 512
SMALL_SIZE = 1 * MIB
SMALL_BUFFER = 2 * MIB
LARGE_BUFFER = 20 * MIB
MIN_LARGE_ALLOC = 10 * MIB
ROUND_LARGE = 2 * MIB


def round_size(nbytes: int) -> int:
    """Request size after the allocator's rounding (a multiple of 512 bytes, at least 512)."""
    return max(ROUND, -(-nbytes // ROUND) * ROUND)


def segment_size(size: int) -> int:
    """Size of the segment cudaMalloc'd for a rounded request that no cached block fits."""
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-size // ROUND_LARGE) * ROUND_LARGE


class _Block:
    __slots__ = ("free", "key", "next", "offset", "prev", "seg", "size", "small")

    def __init__(
        self, seg: int, offset: int, size: int, small: bool, prev: _Block | None = None, nxt: _Block | None = None
    ) -> None:
        self.seg, self.offset, self.size, self.small = seg, offset, size, small
        self.free = True
        self.prev, self.next = prev, nxt
        self.key = (size, seg, offset)


class CachingAllocator:
    """A replay of the caching allocator; `allocate` returns a handle for `free`."""

    def __init__(self) -> None:
        self.reserved = 0
        self.allocated = 0
        self.peak_reserved = 0
        self.peak_allocated = 0
        self._pools: dict[bool, list[tuple[int, int, int]]] = {True: [], False: []}
        self._by_key: dict[tuple[int, int, int], _Block] = {}
        self._segments = 0

    def allocate(self, nbytes: int) -> _Block:
        size = max(ROUND, -(-nbytes // ROUND) * ROUND)
        small = size <= SMALL_SIZE
        pool = self._pools[small]
        i = bisect.bisect_left(pool, (size, -1, -1))
        if i < len(pool):
            block = self._by_key.pop(pool.pop(i))
        else:
            seg = segment_size(size)
            self._segments += 1
            block = _Block(self._segments, 0, seg, small)
            self.reserved += seg
            if self.reserved > self.peak_reserved:
                self.peak_reserved = self.reserved
        rest = block.size - size
        if rest >= ROUND if small else rest > SMALL_SIZE:
            tail = _Block(block.seg, block.offset + size, rest, small, block, block.next)
            if block.next is not None:
                block.next.prev = tail
            block.next = tail
            block.size = size
            block.key = (size, block.seg, block.offset)
            self._insert(tail, small)
        block.free = False
        self.allocated += block.size
        if self.allocated > self.peak_allocated:
            self.peak_allocated = self.allocated
        return block

    def free(self, block: _Block) -> None:
        small = block.small
        self.allocated -= block.size
        block.free = True
        prev, nxt = block.prev, block.next
        if prev is not None and prev.free:
            self._remove(prev, small)
            prev.size += block.size
            prev.next = nxt
            if nxt is not None:
                nxt.prev = prev
            block = prev
        if nxt is not None and nxt.free:
            self._remove(nxt, small)
            block.size += nxt.size
            block.next = nxt.next
            if nxt.next is not None:
                nxt.next.prev = block
        block.key = (block.size, block.seg, block.offset)
        self._insert(block, small)

    def _insert(self, block: _Block, small: bool) -> None:
        bisect.insort(self._pools[small], block.key)
        self._by_key[block.key] = block

    def _remove(self, block: _Block, small: bool) -> None:
        pool = self._pools[small]
        del pool[bisect.bisect_left(pool, block.key)]
        del self._by_key[block.key]
