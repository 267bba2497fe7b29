"""The ggml-alloc replay: the allocator's best-fit rule, merging, in-place reuse and view lifetimes, then the graph
of a llama-like decoder against buffers llama.cpp logged."""

from __future__ import annotations

from vram.engines.ggml_alloc import EXTERNAL, Node, _Allocator, decoder_graph, high_water

MIB = 1024**2


def test_best_fit_takes_the_smallest_hole_that_holds_the_request() -> None:
    a = _Allocator()
    offs = [a.alloc(s * MIB) for s in (4, 1, 8, 1, 2, 1)]
    assert offs == [0, 4 * MIB, 5 * MIB, 13 * MIB, 14 * MIB, 16 * MIB]
    a.free(offs[0], 4 * MIB)  # hole of 4 at 0
    a.free(offs[2], 8 * MIB)  # hole of 8 at 5
    a.free(offs[4], 2 * MIB)  # hole of 2 at 14
    assert a.alloc(3 * MIB) == 0  # 4 is the smallest hole that holds 3
    assert a.alloc(2 * MIB) == 14 * MIB  # an exact fit
    assert a.alloc(9 * MIB) == 17 * MIB  # no hole holds 9: the end of the buffer
    assert a.high == 26 * MIB


def test_freed_neighbours_merge_into_one_block() -> None:
    a = _Allocator()
    x, y, z = (a.alloc(MIB) for _ in range(3))
    a.alloc(MIB)  # keeps the three away from the end
    a.free(x, MIB)
    a.free(z, MIB)
    a.free(y, MIB)  # joins both
    assert a.blocks[0] == [0, 3 * MIB]
    assert a.alloc(3 * MIB) == 0
    assert a.high == 4 * MIB


def test_sizes_are_padded_to_the_alignment() -> None:
    a = _Allocator()
    assert a.alloc(1) == 0
    assert a.alloc(1) == 128
    assert a.high == 256


def test_an_in_place_op_reuses_its_only_user_source_but_not_a_view() -> None:
    m = 10 * MIB
    # mm -> add (in place) -> result: one block
    assert high_water((Node(m), Node(m, (0,), inplace=True), Node(0, (1,), view_of=EXTERNAL))) == m
    # a source still needed later is not overwritten
    assert high_water((Node(m), Node(m, (0,), inplace=True), Node(m, (0, 1)))) == 3 * m
    # a view's result is never the allocator's own, so rope on a reshape gets a tensor of its own
    assert high_water((Node(m), Node(0, (0,), view_of=0), Node(m, (1,), inplace=True))) == 2 * m


def test_a_view_keeps_its_source_alive_until_the_view_is_used() -> None:
    m = MIB
    nodes = (
        Node(4 * m),  # 0
        Node(0, (0,), view_of=0),  # 1: view of 0
        Node(m),  # 2
        Node(m, (2,)),  # 3: 2 is freed here, 0 is not (its view is still to be used)
        Node(4 * m, (1, 3)),  # 4: last user of the view, so 0 is freed after it
        Node(4 * m),  # 5: takes 0's place
    )
    assert high_water(nodes) == 4 * m + m + m + 4 * m


def _qwen25_7b(n_kv: int, f16_mask: bool = False) -> float:
    g = decoder_graph(
        n_layer=28,
        n=512,
        n_out=512,
        hidden=3584,
        q_width=3584,
        k_width=512,
        v_width=512,
        att_out_width=128,
        ffn=18944,
        vocab=152064,
        n_kv=n_kv,
        n_heads=28,
        flash=True,
        f16_mask=f16_mask,
        glu_op=True,
        qk_norm=False,
    )
    return high_water(g) / MIB


def test_the_replay_gives_the_buffers_llama_cpp_logged() -> None:
    """Qwen2.5-7B Q4_K_M on CUDA with flash attention, builds of May 2026: 304.00 MiB at 4096 cells, 382.01 at 32768;
    Llama 3.2 3B on ROCm at 131072 cells: 408.01 (measurements/llama_cpp/logs.jsonl)."""
    assert _qwen25_7b(4096) == 304.0
    assert round(_qwen25_7b(32768), 2) == 382.01
    assert _qwen25_7b(32768, f16_mask=True) == 304.0
    llama = decoder_graph(
        n_layer=28,
        n=512,
        n_out=512,
        hidden=3072,
        q_width=3072,
        k_width=1024,
        v_width=1024,
        att_out_width=128,
        ffn=8192,
        vocab=128256,
        n_kv=131072,
        n_heads=24,
        flash=True,
        f16_mask=False,
        glu_op=True,
        qk_norm=False,
    )
    assert round(high_water(llama) / MIB, 2) == 408.01
