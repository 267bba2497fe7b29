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


def _decoder(n_layer: int, hidden: int, heads: int, kv_heads: int, ffn: int, vocab: int, n_kv: int, f16: bool) -> float:
    """The replayed buffer in MiB of a llama-like decoder (head size 128) at n_ubatch 512 with flash attention."""
    g = decoder_graph(
        n_layer=n_layer,
        n=512,
        n_out=512,
        hidden=hidden,
        q_width=heads * 128,
        k_width=kv_heads * 128,
        v_width=kv_heads * 128,
        att_out_width=128,
        ffn=ffn,
        vocab=vocab,
        n_kv=n_kv,
        n_heads=heads,
        flash=True,
        f16_mask=f16,
        glu_op=True,
        qk_norm=False,
    )
    return high_water(g) / MIB


def test_the_replay_gives_the_buffers_llama_cpp_logged() -> None:
    """Qwen2.5-7B Q4_K_M on CUDA with flash attention, builds of May 2026: 304.00 MiB at 4096 cells, 382.01 at 32768;
    Llama 3.2 3B on ROCm at 131072 cells: 408.01 (measurements/llama_cpp/logs.jsonl)."""

    def qwen(n_kv: int, f16: bool = False) -> float:
        return _decoder(28, 3584, 28, 4, 18944, 152064, n_kv, f16)

    assert qwen(4096) == 304.0
    assert round(qwen(32768), 2) == 382.01
    assert qwen(32768, f16=True) == 304.0
    assert round(_decoder(28, 3072, 24, 8, 8192, 128256, 131072, False), 2) == 408.01
