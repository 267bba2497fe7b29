"""GGUF files: metadata and tensor infos through the `gguf` package's reader (a memory map; tensors never loaded).

From the tensor infos: exact bytes per tensor and ggml type, per transformer block (for partial offload). From the
architecture keys (`{arch}.block_count`, `.embedding_length`, `.attention.head_count[_kv]`, `.attention.key_length`,
`.attention.sliding_window`, `.expert_count`, `.context_length` ...): an equivalent Hugging Face config, turned into a
ModelSpec by the same code that reads config.json. Architectures that code does not model get a generic
decoder description from the same keys, with the exact parameter count taken from the tensors.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NeedsExtra, SourceError, UnsupportedArchitecture
from ..model import ModelSpec, model_from_config
from ..records import field, record, replace

MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
_BLK = re.compile(r"^blk\.(\d+)\.")
_SPLIT = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<n>\d{5})\.gguf$")
MAX_SPLITS = 1024

# general.architecture -> Hugging Face model_type that model_from_config knows
ARCH_TO_MODEL_TYPE: dict[str, str] = {
    "llama": "llama",
    "mistral3": "llama",
    "granite": "llama",
    "qwen2": "qwen2",
    "qwen3": "qwen3",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gemma2": "gemma2",
    "gemma3": "gemma3_text",
    "phi3": "phi3",
    "olmo2": "olmo2",
    "command-r": "cohere",
    "cohere2": "cohere",
    "deepseek2": "deepseek_v3",
    "gpt-oss": "gpt_oss",
    "lfm2": "lfm2",
    "falcon": "falcon",
    # gated DeltaNet hybrids: llama.cpp's convert_hf_to_gguf.py writes the linear-attention shapes as ssm.* keys
    # (conv_kernel = linear_conv_kernel_dim, state_size = linear_key_head_dim, group_count = linear_num_key_heads,
    # time_step_rank = linear_num_value_heads, inner_size = linear_value_head_dim × linear_num_value_heads) and
    # full_attention_interval
    "qwen3next": "qwen3_next",
    "qwen35": "qwen3_5_text",
    "qwen35moe": "qwen3_5_moe_text",
}


@record(frozen=True)
class GgufTensor:
    name: str
    type_name: str
    shape: tuple[int, ...]  # ggml order: ne[0] is the row length
    n_elements: int
    nbytes: int


@record(frozen=True)
class GgufFile:
    path: str
    architecture: str
    metadata: dict[str, Any]
    tensors: tuple[GgufTensor, ...]
    file_size: int

    def key(self, name: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{name}", default)


@record(frozen=True)
class GgufWeights:
    """What llama.cpp loads: bytes per block, for the input layer (token embeddings, always on the CPU) and for the
    output layer (final norm + output matrix), by ggml type."""

    params: int
    bytes: int
    layer_bytes: dict[int, int]
    input_bytes: int
    output_bytes: int
    bytes_by_type: dict[str, int]
    params_by_type: dict[str, int]
    n_layer: int
    source: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    tensors: tuple[Any, ...] = field(default_factory=tuple)  # vram.engines.gguf_plan.Tensor, in file order

    def summary(self) -> str:
        types = ", ".join(
            f"{k} {v / 2**20:,.1f} MiB" for k, v in sorted(self.bytes_by_type.items(), key=lambda kv: -kv[1])
        )
        return f"{self.params:,} parameters, {self.bytes:,} bytes ({types})"


def _reader_class(header_only: bool = False) -> Any:
    try:
        import numpy as np
        from gguf import GGUFReader, GGUFValueType
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise NeedsExtra("reading GGUF files", "sources") from exc

    class BoundedReader(GGUFReader):
        """GGUFReader that refuses any read past the end of the file and any array longer than the bytes left,
        so hostile counts fail at once instead of looping or allocating."""

        def _get(self, offset: int, dtype: Any, count: int = 1, override_order: Any = None) -> Any:
            count = int(count)
            itemsize = int(np.empty([], dtype=dtype).itemsize)
            if count < 0 or offset < 0 or offset + itemsize * count > len(self.data):
                raise ValueError(f"read of {count} items at offset {offset} past the end of the file")
            return super()._get(offset, dtype, count, override_order)

        def _get_field_parts(self, orig_offs: int, raw_type: int) -> Any:
            if raw_type != GGUFValueType.ARRAY:
                return super()._get_field_parts(orig_offs, raw_type)
            raw_itype = self._get(orig_offs, np.uint32)
            alen_arr = self._get(orig_offs + 4, np.uint64)
            alen = int(alen_arr[0])
            if alen > len(self.data) - orig_offs:
                raise ValueError(f"array of {alen} items runs past the end of the file")
            sub = GGUFValueType(int(raw_itype[0]))
            offs = orig_offs + 12
            types = [GGUFValueType.ARRAY, sub]
            if sub == GGUFValueType.STRING:
                # vocabularies and merges: walk the length prefixes only (the reader would build two arrays per
                # string, seconds for a 128k-token vocabulary); the field keeps its item count
                end = len(self.data)
                buf = self.data.data  # the memmap's own buffer
                for _ in range(alen):
                    if offs + 8 > end:
                        raise ValueError("string array runs past the end of the file")
                    (n,) = struct.unpack_from("<Q", buf, offs)
                    offs += 8 + n
                if offs > end:
                    raise ValueError("string array runs past the end of the file")
                return offs - orig_offs, [raw_itype, alen_arr], [], types
            nptype = self.gguf_scalar_to_np.get(sub)
            if nptype is None:
                return super()._get_field_parts(orig_offs, raw_type)
            arr = self._get(offs, nptype, alen)  # one view of the whole numeric array
            return 12 + int(arr.nbytes), [raw_itype, alen_arr, arr], [2], types

        def _build_fields(self, offs: int, count: int) -> int:
            if int(count) > MAX_KV:
                raise ValueError(f"{int(count)} metadata keys")
            return int(super()._build_fields(offs, count))

        def _build_tensor_info(self, offs: int, count: int) -> Any:
            if int(count) > MAX_TENSORS:
                raise ValueError(f"{int(count)} tensors")
            return super()._build_tensor_info(offs, count)

        def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
            if not header_only:
                super()._build_tensors(start_offs, fields)
                return
            # only the header was fetched (remote files): tensor infos without their data
            from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, ReaderTensor

            tensors = []
            for f in fields:
                _, name_data, _, dims, raw_dtype, offset_tensor = f.parts
                qt = GGMLQuantizationType(int(raw_dtype[0]))
                n = 1
                for d in dims.tolist():
                    n *= int(d)
                block, size = GGML_QUANT_SIZES[qt]
                tensors.append(
                    ReaderTensor(
                        name=str(bytes(name_data), encoding="utf-8"),
                        tensor_type=qt,
                        shape=dims,
                        n_elements=n,
                        n_bytes=n * size // block,
                        data_offset=int(start_offs + int(offset_tensor[0])),
                        data=np.empty(0, np.uint8),
                        field=f,
                    )
                )
            self.tensors = tensors

    return BoundedReader


def _field_value(f: Any) -> Any:
    from gguf import GGUFValueType

    if not f.types:
        return None
    if f.types[0] == GGUFValueType.ARRAY:
        if f.types[-1] == GGUFValueType.STRING:
            # token lists, merges: only their length matters here (walked, not built, by the bounded reader)
            return len(f.data) if f.data else int(f.parts[-1][0])
        if len(f.data) == 1:
            arr = f.parts[f.data[0]]  # a numeric array, read as one view
            return arr.tolist() if arr.size <= 65536 else int(arr.size)
        return [v.item() if hasattr(v, "item") else v for v in (f.parts[i][0] for i in f.data)]
    v = f.contents()
    return v.item() if hasattr(v, "item") else v


def read_gguf(
    path: Path, *, require_arch: bool = True, remote_size: int | None = None, source: str | None = None
) -> GgufFile:
    """Metadata and tensor infos of a GGUF file; raises SourceError with the reason for bad files.

    `remote_size`: `path` holds only the first bytes (the header) of a remote file of that size."""
    src = source or str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise SourceError(f"{src}: cannot read ({exc.strerror or exc.__class__.__name__})") from exc
    if magic != b"GGUF":
        raise SourceError(f"{src}: not a GGUF file (bad magic {magic!r})")
    reader_cls = _reader_class(header_only=remote_size is not None)
    if remote_size is not None:
        size = remote_size
    try:
        r = reader_cls(str(path), "r")
        meta: dict[str, Any] = {}
        for name, f in r.fields.items():
            if name.startswith("GGUF."):
                continue
            meta[name] = _field_value(f)
        tensors = []
        for t in r.tensors:
            n_el = int(t.n_elements)
            shape = tuple(int(d) for d in t.shape)
            nbytes = int(t.n_bytes)
            if n_el < 0 or nbytes < 0 or int(t.data_offset) + nbytes > size:
                raise ValueError(f"tensor {t.name} data past the end of the file")
            tensors.append(GgufTensor(str(t.name), t.tensor_type.name, shape, n_el, nbytes))
    except SourceError:
        raise
    except (ValueError, KeyError, IndexError, UnicodeDecodeError, OverflowError, TypeError) as exc:
        raise SourceError(f"{src}: corrupt GGUF file ({exc})") from exc
    except OSError as exc:
        raise SourceError(f"{src}: cannot map the file ({exc.strerror or exc.__class__.__name__})") from exc
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        if require_arch:
            raise SourceError(f"{src}: GGUF file has no general.architecture")
        arch = ""
    return GgufFile(src, arch, meta, tuple(tensors), size)


def read_gguf_model(path: Path) -> GgufFile:
    """A whole model: one GGUF file, or every split of a split model (`name-00001-of-00003.gguf`, as written by
    llama.cpp's gguf-split and gguf-py) given any one of them; metadata comes from the first split."""
    m = _SPLIT.match(path.name)
    if not m:
        return read_gguf(path)
    count = int(m["n"])
    if not 1 <= count <= MAX_SPLITS:
        raise SourceError(f"{path}: split GGUF with {count} parts")
    parts = [path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise SourceError(f"{path}: split GGUF part {missing[0]} is missing ({len(missing)} of {count})")
    first = read_gguf(parts[0])
    declared = first.metadata.get("split.count")
    if declared is not None and int(declared) != count:
        raise SourceError(f"{parts[0]}: split.count {declared} but the file names say {count}")
    tensors = list(first.tensors)
    size = first.file_size
    for p in parts[1:]:
        g = read_gguf(p, require_arch=False)
        tensors.extend(g.tensors)
        size += g.file_size
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise SourceError(f"{path}: a tensor appears in more than one split")
    want = first.metadata.get("split.tensors.count")
    if want is not None and int(want) != len(tensors):
        raise SourceError(f"{path}: the splits hold {len(tensors)} tensors, split.tensors.count says {want}")
    return GgufFile(str(parts[0]), first.architecture, first.metadata, tuple(tensors), size)


def gguf_weights(g: GgufFile) -> GgufWeights:
    layer: dict[int, int] = {}
    by_type: dict[str, int] = {}
    params_by: dict[str, int] = {}
    inp = out = 0
    for t in g.tensors:
        by_type[t.type_name] = by_type.get(t.type_name, 0) + t.nbytes
        params_by[t.type_name] = params_by.get(t.type_name, 0) + t.n_elements
        m = _BLK.match(t.name)
        if m:
            i = int(m.group(1))
            layer[i] = layer.get(i, 0) + t.nbytes
        elif t.name.startswith(("token_embd", "token_types", "position_embd")):
            inp += t.nbytes
        else:
            out += t.nbytes
    n_layer = int(g.key("block_count", 0) or (max(layer) + 1 if layer else 0))
    from ..engines.gguf_plan import Tensor

    plan = tuple(Tensor(t.name, t.type_name, t.shape[0] if t.shape else 1, t.n_elements, t.nbytes) for t in g.tensors)
    return GgufWeights(
        tensors=plan,
        params=sum(t.n_elements for t in g.tensors),
        bytes=sum(t.nbytes for t in g.tensors),
        layer_bytes=layer,
        input_bytes=inp,
        output_bytes=out,
        bytes_by_type=by_type,
        params_by_type=params_by,
        n_layer=n_layer,
        source=g.path,
    )


def _scalar(v: Any, how: str = "max") -> int | None:
    """GGUF stores some per-layer values as arrays (head counts of hybrid models): take the max or first."""
    if isinstance(v, list):
        vals = [int(x) for x in v if isinstance(x, int | float)]
        if not vals:
            return None
        return max(vals) if how == "max" else vals[0]
    if isinstance(v, int | float) and not isinstance(v, bool):
        return int(v)
    return None


def _tensor(g: GgufFile, name: str) -> GgufTensor | None:
    return next((t for t in g.tensors if t.name == name), None)


def gguf_config(g: GgufFile) -> dict[str, Any]:
    """An equivalent config.json for the architectures model_from_config supports (or a generic llama-like one)."""
    arch = g.architecture
    need = {
        "block_count": g.key("block_count"),
        "embedding_length": g.key("embedding_length"),
        "attention.head_count": g.key("attention.head_count"),
    }
    missing = [k for k, v in need.items() if _scalar(v) is None]
    if missing:
        raise SourceError(f"{g.path}: GGUF metadata lacks {', '.join(f'{arch}.{k}' for k in missing)}")
    n_layer = int(_scalar(need["block_count"]) or 0)
    h = int(_scalar(need["embedding_length"]) or 0)
    heads = int(_scalar(need["attention.head_count"]) or 0)
    kv_raw = g.key("attention.head_count_kv")
    kv = _scalar(kv_raw) if kv_raw is not None else heads
    key_len = _scalar(g.key("attention.key_length"))
    emb = _tensor(g, "token_embd.weight")
    vocab = (
        _scalar(g.key("vocab_size"))
        or (emb.shape[1] if emb and len(emb.shape) > 1 else None)
        or _scalar(g.metadata.get("tokenizer.ggml.tokens"))
    )
    if not vocab or not heads or not h or not n_layer:
        raise SourceError(f"{g.path}: GGUF metadata gives no usable vocabulary / head count / width")
    ff = _scalar(g.key("feed_forward_length")) or 4 * h
    mt = ARCH_TO_MODEL_TYPE.get(arch, "llama")
    n_exp = _scalar(g.key("expert_count")) or 0
    if mt == "llama" and n_exp:
        mt = "mixtral"
    cfg: dict[str, Any] = {
        "model_type": mt,
        "architectures": [f"gguf:{arch}"],
        "hidden_size": h,
        "num_hidden_layers": n_layer,
        "intermediate_size": ff,
        "num_attention_heads": heads,
        "num_key_value_heads": kv or heads,
        "vocab_size": int(vocab),
        "max_position_embeddings": _scalar(g.key("context_length")),
        "tie_word_embeddings": _tensor(g, "output.weight") is None,
        "torch_dtype": "float16",
    }
    if key_len:
        cfg["head_dim"] = key_len
    window = _scalar(g.key("attention.sliding_window"))
    if window:
        cfg["sliding_window"] = window
        if mt in ("qwen2", "qwen3"):
            cfg["use_sliding_window"] = True
    if n_exp:
        cfg["num_local_experts"] = cfg["num_experts"] = n_exp
        cfg["num_experts_per_tok"] = _scalar(g.key("expert_used_count")) or 1
        cfg["moe_intermediate_size"] = _scalar(g.key("expert_feed_forward_length")) or ff
    if mt in ("qwen2_moe", "qwen3_next", "qwen3_5_moe_text"):
        cfg["shared_expert_intermediate_size"] = _scalar(g.key("expert_shared_feed_forward_length")) or 0
    if mt in ("qwen3_next", "qwen3_5_text", "qwen3_5_moe_text"):
        need_ssm = {
            k: _scalar(g.key(f"ssm.{k}"))
            for k in ("conv_kernel", "state_size", "group_count", "time_step_rank", "inner_size")
        }
        if any(v is None for v in need_ssm.values()):
            absent = ", ".join(f"{arch}.ssm.{k}" for k, v in need_ssm.items() if v is None)
            raise SourceError(f"{g.path}: GGUF metadata lacks {absent} (the linear-attention layers' shapes)")
        v_heads = int(need_ssm["time_step_rank"] or 1)
        cfg.update(
            linear_conv_kernel_dim=need_ssm["conv_kernel"],
            linear_key_head_dim=need_ssm["state_size"],
            linear_num_key_heads=need_ssm["group_count"],
            linear_num_value_heads=v_heads,
            linear_value_head_dim=int(need_ssm["inner_size"] or 0) // v_heads,
            full_attention_interval=_scalar(g.key("full_attention_interval")) or 4,
        )
        every = int(cfg["full_attention_interval"])
        cfg["layer_types"] = ["full_attention" if (i + 1) % every == 0 else "linear_attention" for i in range(n_layer)]
    if mt == "deepseek_v3":
        rope = _scalar(g.key("rope.dimension_count")) or 64
        kv_lora = _scalar(g.key("attention.kv_lora_rank")) or 512
        vlen = _scalar(g.key("attention.value_length")) or 128
        cfg.update(
            moe_intermediate_size=_scalar(g.key("expert_feed_forward_length")) or ff,
            n_routed_experts=n_exp,
            n_shared_experts=_scalar(g.key("expert_shared_count")) or 0,
            first_k_dense_replace=_scalar(g.key("leading_dense_block_count")) or 0,
            q_lora_rank=_scalar(g.key("attention.q_lora_rank")) or 0,
            kv_lora_rank=kv_lora,
            qk_rope_head_dim=rope,
            qk_nope_head_dim=(key_len or 192) - rope,
            v_head_dim=vlen,
        )
    if mt == "gpt_oss":
        cfg["num_local_experts"] = n_exp
        cfg["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layer)]
    if mt == "lfm2":
        kvs = g.key("attention.head_count_kv")
        if isinstance(kvs, list):
            cfg["layer_types"] = ["full_attention" if int(x) > 0 else "conv" for x in kvs]
            cfg["num_key_value_heads"] = max(int(x) for x in kvs)
        cfg["block_ff_dim"] = ff
        cfg["conv_L_cache"] = _scalar(g.key("shortconv.l_cache")) or 3
    if mt == "gemma3_text" and window:
        cfg["sliding_window_pattern"] = 6
    if mt == "falcon":
        cfg["new_decoder_architecture"] = kv is not None and kv > 1
        cfg["num_kv_heads"] = kv
    return cfg


def gguf_spec(g: GgufFile, w: GgufWeights, name: str) -> ModelSpec:
    """ModelSpec for a GGUF file; the parameter count is the tensors' exact element count."""
    cfg = gguf_config(g)
    notes: list[str] = [f"GGUF architecture {g.architecture!r}"]
    try:
        spec = model_from_config(cfg, name=name)
    except (UnsupportedArchitecture, ConfigError) as exc:
        raise SourceError(f"{g.path}: cannot describe GGUF architecture {g.architecture!r} ({exc})") from exc
    if g.architecture not in ARCH_TO_MODEL_TYPE:
        notes.append(
            f"architecture {g.architecture!r} described as a generic decoder from its GGUF keys "
            "(layer count, heads, key/value lengths); parameter count and bytes are the tensors' own"
        )
    diff = w.params - spec.params
    if diff:
        notes.append(
            f"parameter count from the GGUF tensors ({w.params:,}); the equivalent config gives {spec.params:,}"
        )
    return replace(
        spec,
        extra_params=spec.extra_params + diff,
        notes=(*spec.notes, *notes),
        max_position_embeddings=spec.max_position_embeddings or _scalar(g.key("context_length")),
    )


def config_from_metadata(meta: Mapping[str, Any], arch: str) -> dict[str, Any]:
    """Convenience for callers holding only metadata (no tensors)."""
    return gguf_config(GgufFile("<metadata>", arch, dict(meta), (), 0))


__all__ = [
    "ARCH_TO_MODEL_TYPE",
    "GgufFile",
    "GgufTensor",
    "GgufWeights",
    "gguf_config",
    "gguf_spec",
    "gguf_weights",
    "read_gguf",
    "read_gguf_model",
]
