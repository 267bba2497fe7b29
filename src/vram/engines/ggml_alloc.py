"""A replay of ggml-alloc's graph allocator over the worst-case graph llama.cpp reserves on one GPU.

ggml-alloc (ggml/src/ggml-alloc.c) sizes a compute buffer by the highest offset any tensor reached, holes included;
the largest set of tensors alive at one time is only a lower bound of that. This module replays its rules on a
tensor graph described by sizes and sources:

* **Allocator** (`ggml_dyn_tallocr_alloc` / `_free_bytes`): free blocks kept sorted by offset; a request takes the
  smallest free block that holds it among all but the last one (on ties the later block), else the last block,
  which in a reserve run is unbounded; a freed range merges with the free blocks it touches. Sizes are padded to the
  buffer's alignment (128 bytes on CUDA / ROCm / Vulkan).
* **Graph** (`ggml_gallocr_alloc_graph_impl`): nodes are allocated in graph order; a view takes no memory and keeps
  its source alive until its own users are done; an op that can run in place (add, mul, norms, rope, softmax,
  unary ...) reuses its first source of the same layout when that source is owned by the allocator (not a view, not
  an external tensor), is no graph output and has no other user left; a tensor is freed once its last user ran.
* **Split inputs** (ggml-backend.cpp `ggml_backend_sched_split_graph`): a GPU split's inputs that come from the CPU
  (the looked-up embeddings, positions, KV indices, the KQ mask, output ids) are copies allocated at the split's
  start, in the order the split's nodes first use them, and freed after their last user like any other tensor.

`decoder_graph` builds the graph of a llama-like decoder (llama, mistral, qwen2, qwen3: rms norms, rope, a gated
feed-forward) as src/models/*.cpp and src/llama-graph.cpp build it for n_ubatch tokens attending to every cell.
"""

from __future__ import annotations

from functools import lru_cache

from ..records import record

ALIGN = 128
EXTERNAL = -2  # Node.view_of of a view of a tensor the allocator does not own (the KV cache)
_UNBOUNDED = 1 << 62


def _pad(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


class _Allocator:
    """ggml_dyn_tallocr in a reserve run: one chunk whose last free block is unbounded."""

    __slots__ = ("blocks", "high")

    def __init__(self) -> None:
        self.blocks: list[list[int]] = [[0, _UNBOUNDED]]  # [offset, size], sorted by offset
        self.high = 0

    def alloc(self, size: int) -> int:
        size = _pad(size)
        best, best_size = -1, _UNBOUNDED
        for i in range(len(self.blocks) - 1):
            b = self.blocks[i]
            if size <= b[1] <= best_size:
                best, best_size = i, b[1]
        if best < 0:
            best = len(self.blocks) - 1
        b = self.blocks[best]
        off = b[0]
        b[0] += size
        b[1] -= size
        if b[1] == 0:
            del self.blocks[best]
        self.high = max(self.high, off + size)
        return off

    def free(self, off: int, size: int) -> None:
        size = _pad(size)
        bl = self.blocks
        for i, b in enumerate(bl):
            if b[0] + b[1] == off:
                b[1] += size
                if i + 1 < len(bl) and b[0] + b[1] == bl[i + 1][0]:
                    b[1] += bl[i + 1][1]
                    del bl[i + 1]
                return
            if off + size == b[0]:
                b[0] = off
                b[1] += size
                if i > 0 and bl[i - 1][0] + bl[i - 1][1] == b[0]:
                    bl[i - 1][1] += b[1]
                    del bl[i]
                return
        k = 0
        while k < len(bl) and bl[k][0] < off:
            k += 1
        bl.insert(k, [off, size])


@record(frozen=True)
class Node:
    """One tensor of the graph: its bytes (0 for a view), its sources (indices of earlier nodes), whether its op
    may run in place, the node it is a view of (the root, as ggml records it; -1 none, EXTERNAL), and whether it is a
    graph output."""

    size: int
    srcs: tuple[int, ...] = ()
    inplace: bool = False
    view_of: int = -1
    output: bool = False


def high_water(nodes: tuple[Node, ...]) -> int:
    """The compute buffer ggml-alloc reserves for `nodes` on one backend: the highest offset reached."""
    n = len(nodes)
    children = [0] * n
    views = [0] * n
    for nd in nodes:
        if nd.view_of >= 0:
            views[nd.view_of] += 1
        for s in nd.srcs:
            children[s] += 1
    alloc = _Allocator()
    owned = [False] * n
    addr = [0] * n
    size = [0] * n
    for i, nd in enumerate(nodes):
        if nd.view_of == -1:
            placed = False
            if nd.inplace:
                for s in nd.srcs:
                    p = nodes[s]
                    if not owned[s] or p.output or p.size != nd.size:
                        continue
                    if children[s] == 1 and views[s] == 0:
                        addr[i], size[i] = addr[s], nd.size
                        owned[s] = False
                        placed = True
                        break
            if not placed:
                addr[i], size[i] = alloc.alloc(nd.size), nd.size
            owned[i] = True
        for s in nd.srcs:
            children[s] -= 1
            if children[s] or views[s]:
                continue
            v = nodes[s].view_of
            if v >= 0:
                views[v] -= 1
                if views[v] == 0 and children[v] == 0 and owned[v] and not nodes[v].output:
                    alloc.free(addr[v], size[v])
                    owned[v] = False
            elif owned[s] and not nodes[s].output:
                alloc.free(addr[s], size[s])
                owned[s] = False
    return alloc.high


class _Graph:
    __slots__ = ("nodes",)

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def add(self, size: int, *srcs: int, inplace: bool = False, output: bool = False) -> int:
        self.nodes.append(Node(size, tuple(srcs), inplace, -1, output))
        return len(self.nodes) - 1

    def store(self, *srcs: int) -> None:
        """A node whose result is a view of a tensor outside the graph (set_rows / cpy into the KV cache)."""
        self.nodes.append(Node(0, srcs, False, EXTERNAL))

    def roped(self, size: int, x: int, pos: int, normed: bool) -> int:
        """A q or k projection: the matmul (a bias adds in place), a reshape (a view), the per-head rms norm and its
        weight when the model has one, then rope, which runs in place only on a tensor the allocator owns."""
        t = self.view(self.add(size, x))
        if normed:
            t = self.add(size, self.add(size, t, inplace=True), inplace=True)
        return self.add(size, t, pos, inplace=True)

    def view(self, of: int) -> int:
        root = self.nodes[of].view_of
        self.nodes.append(Node(0, (of,), False, of if root < 0 else root))
        return len(self.nodes) - 1


def decoder_graph(
    *,
    n_layer: int,
    n: int,
    n_out: int,
    hidden: int,
    q_width: int,
    k_width: int,
    v_width: int,
    att_out_width: int,
    ffn: int,
    vocab: int,
    n_kv: int,
    n_heads: int,
    flash: bool,
    f16_mask: bool,
    glu_op: bool,
    qk_norm: bool,
    n_pos: int = 1,
) -> tuple[Node, ...]:
    """The GPU split of a llama-like decoder's worst-case graph with every layer and the output on one GPU.

    `n` tokens (n_ubatch), `n_out` logits rows, `n_kv` cells. With flash attention, builds before F16_MASK_BUILD
    copy the f32 mask and cast it to f16 in layer 0 (`f16_mask` False); later ones make the mask f16 at once."""
    g = _Graph()
    f = 4
    mask_el = 2 if (flash and f16_mask) else 4
    # split inputs, allocated at the split's start in the order of first use
    embd = g.add(n * hidden * f)
    pos = g.add(n * 4 * n_pos)
    k_idx = g.add(n * 8)
    v_idx = g.add(n * 8)
    mask_in = g.add(n_kv * n * mask_el)
    out_ids = g.add(n_out * 4)
    mask = -1
    x = embd
    for il in range(n_layer):
        last = il == n_layer - 1
        cur = g.add(n * hidden * f, x, inplace=True)  # rms_norm (x also feeds the residual)
        cur = g.add(n * hidden * f, cur, inplace=True)  # × attn_norm
        q = g.roped(n * q_width * f, cur, pos, qk_norm)
        # v: mm, reshape (the llama-graph.cpp build_attn expands v before k)
        v = g.view(g.add(n * v_width * f, cur))
        k = g.roped(n * k_width * f, cur, pos, qk_norm)
        g.store(k, k_idx)  # set_rows into the cache: a view of the cache tensor
        g.store(v, v_idx)
        if mask < 0:
            mask = g.add(n_kv * n * 2, mask_in) if (flash and not f16_mask) else mask_in
        qp = g.view(q)  # view_4d + permute
        if flash:
            att = g.add(n * n_heads * att_out_width * f, qp, mask)
        else:
            kq = g.add(n_kv * n * n_heads * f, qp)
            kq = g.add(n_kv * n * n_heads * f, kq, mask, inplace=True)  # soft_max_ext
            kqv = g.view(g.add(n * n_heads * att_out_width * f, kq))  # mm(v, kq), permute
            att = g.add(n * n_heads * att_out_width * f, kqv)  # cont_2d
        att = g.view(att)  # reshape_2d
        o = g.add(n * hidden * f, att)  # × wo
        res = x
        if last:
            o = g.add(n_out * hidden * f, o, out_ids)
            res = g.add(n_out * hidden * f, x, out_ids)
        rows = n_out if last else n
        ffn_inp = g.add(rows * hidden * f, o, res, inplace=True)
        cur = g.add(rows * hidden * f, ffn_inp, inplace=True)
        cur = g.add(rows * hidden * f, cur, inplace=True)
        up = g.add(rows * ffn * f, cur)
        gate = g.add(rows * ffn * f, cur)
        if glu_op:
            act = g.add(rows * ffn * f, gate, up)  # swiglu_split: a tensor of its own
        else:
            act = g.add(rows * ffn * f, gate, inplace=True)  # silu
            act = g.add(rows * ffn * f, act, up, inplace=True)  # × up
        down = g.add(rows * hidden * f, act)
        x = g.add(rows * hidden * f, down, ffn_inp, inplace=True)
    cur = g.add(n_out * hidden * f, x, inplace=True)  # output rms_norm
    cur = g.add(n_out * hidden * f, cur, inplace=True, output=True)  # × output_norm (t_embd)
    g.add(n_out * vocab * f, cur, output=True)  # logits
    return tuple(g.nodes)


@lru_cache(maxsize=1024)
def decoder_buffer(**shape: int | bool) -> int:
    """high_water(decoder_graph(**shape)), remembered: a which / fit over many GPUs asks for the same graphs again."""
    return high_water(decoder_graph(**shape))  # type: ignore[arg-type]
