"""Safetensors headers: exact tensor shapes, dtypes and bytes without reading a single weight.

A .safetensors file is an 8-byte little-endian header length N, N bytes of JSON
(`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`) and then the tensor data.
Only the first 8 + N bytes are read, after checking N against a maximum and against the file size, so a corrupt or
hostile file costs at most MAX_HEADER_BYTES of memory. The parser (`parse_header`) takes bytes and is shared by
local files and remote ones (the Hub reader fetches the same bytes with range requests).
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..records import field, record

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit safetensors itself enforces
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_DIMS = 16

# bits per element of each safetensors dtype (sub-byte float formats are packed)
DTYPE_BITS: dict[str, int] = {
    "F64": 64,
    "F32": 32,
    "F16": 16,
    "BF16": 16,
    "I64": 64,
    "I32": 32,
    "I16": 16,
    "I8": 8,
    "U64": 64,
    "U32": 32,
    "U16": 16,
    "U8": 8,
    "BOOL": 8,
    "F8_E4M3": 8,
    "F8_E5M2": 8,
    "F8_E8M0": 8,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F4": 4,
    "C64": 64,
}


@record(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@record(frozen=True)
class SafetensorsHeader:
    """One file's header: its tensors (in offset order), free-form metadata and the size of header + data."""

    tensors: tuple[TensorInfo, ...]
    metadata: dict[str, str]
    header_bytes: int
    data_bytes: int


def header_length(first8: bytes, file_size: int | None, source: str) -> int:
    """The JSON header's length from the first 8 bytes, checked against the maximum and the file size."""
    if len(first8) < 8:
        raise SourceError(f"{source}: not a safetensors file (shorter than its 8-byte header length)")
    (n,) = struct.unpack("<Q", first8[:8])
    if n < 2:
        raise SourceError(f"{source}: corrupt safetensors header (length {n})")
    if n > MAX_HEADER_BYTES:
        raise SourceError(
            f"{source}: safetensors header length {n:,} bytes exceeds the {MAX_HEADER_BYTES:,}-byte "
            "maximum (corrupt or not a safetensors file)"
        )
    if file_size is not None and 8 + n > file_size:
        raise SourceError(f"{source}: truncated safetensors file (header of {n:,} bytes, file of {file_size:,})")
    return int(n)


def tensor_nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    return (math.prod(shape) * DTYPE_BITS[dtype] + 7) // 8


def _check_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def parse_header(raw: bytes, *, data_size: int | None, source: str) -> SafetensorsHeader:
    """Parse a header's JSON bytes. `data_size` (file size minus 8 + N) bounds the offsets when known."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SourceError(f"{source}: corrupt safetensors header (not valid JSON: {exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise SourceError(f"{source}: corrupt safetensors header (expected a JSON object)")
    meta_raw = obj.pop("__metadata__", None) or {}
    if not isinstance(meta_raw, dict):
        raise SourceError(f"{source}: corrupt safetensors header (__metadata__ must be an object)")
    metadata = {str(k): str(v) for k, v in meta_raw.items()}
    tensors: list[tuple[int, TensorInfo]] = []
    end_max = 0
    for name, info in obj.items():
        if not isinstance(info, dict):
            raise SourceError(f"{source}: corrupt safetensors header (entry {name!r} is not an object)")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise SourceError(f"{source}: tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_check_int(d) for d in shape):
            raise SourceError(f"{source}: tensor {name!r} has an invalid shape {shape!r}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(_check_int(o) for o in offsets)
            and offsets[0] <= offsets[1]
        ):
            raise SourceError(f"{source}: tensor {name!r} has invalid data_offsets {offsets!r}")
        shp = tuple(int(d) for d in shape)
        nbytes = tensor_nbytes(dtype, shp)
        begin, end = int(offsets[0]), int(offsets[1])
        if end - begin != nbytes:
            raise SourceError(
                f"{source}: tensor {name!r} spans {end - begin:,} bytes but {dtype} {list(shp)} needs {nbytes:,}"
            )
        if data_size is not None and end > data_size:
            raise SourceError(
                f"{source}: tensor {name!r} ends at byte {end:,}, past the end of the data ({data_size:,} bytes)"
            )
        end_max = max(end_max, end)
        tensors.append((begin, TensorInfo(str(name), dtype, shp, nbytes)))
    tensors.sort(key=lambda t: t[0])
    return SafetensorsHeader(tuple(t for _, t in tensors), metadata, header_bytes=8 + len(raw), data_bytes=end_max)


def read_header(path: Path) -> SafetensorsHeader:
    """Read one local file's header: 8 bytes, then at most MAX_HEADER_BYTES (never the tensors)."""
    src = str(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            n = header_length(f.read(8), size, src)
            raw = f.read(n)
    except OSError as exc:
        raise SourceError(f"{src}: cannot read ({exc.strerror or exc.__class__.__name__})") from exc
    if len(raw) != n:
        raise SourceError(f"{src}: truncated safetensors header")
    return parse_header(raw, data_size=size - 8 - n, source=src)


def parse_index(raw: bytes, source: str) -> list[str]:
    """Shard file names from a model.safetensors.index.json (`weight_map`: tensor -> file)."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SourceError(f"{source}: not valid JSON") from exc
    wm = obj.get("weight_map") if isinstance(obj, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
        raise SourceError(f"{source}: no weight_map of tensor -> file names")
    files = sorted(set(wm.values()))
    for f in files:
        if "/" in f or "\\" in f or f.startswith(".") or not f.endswith(".safetensors"):
            raise SourceError(f"{source}: bad shard name {f!r}")
    return files


# ---------------------------------------------------------------------------------------------------------------
# what the tensors say: parameter count, bytes per dtype, quantization


@record(frozen=True)
class WeightsInfo:
    """A checkpoint's tensors summarised: logical parameters, stored bytes, and how they are quantized.

    `params` counts the weights of the original model: packed quantized tensors are expanded to the number of values
    they hold (a GPTQ int32 qweight holds 32/bits weights per element), and quantization metadata (scales, zeros,
    group indices, absmax, quant maps) is not counted. `bytes` is what is stored: every tensor, metadata included.
    """

    source: str
    params: int
    bytes: int
    bytes_by_dtype: dict[str, int]
    params_by_dtype: dict[str, int]
    quant_method: str | None = None
    quant_bits: int | None = None
    group_size: int | None = None
    quantized_params: int = 0
    unquantized: tuple[str, ...] = ()  # kinds of tensors kept in 16/32-bit (embeddings, lm_head, norms ...)
    files: tuple[str, ...] = ()
    tensor_count: int = 0
    layer_bytes: dict[int, int] = field(default_factory=dict)  # per transformer block, for offload maths
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        q = (
            f"; {self.quant_method}"
            + (f" {self.quant_bits}-bit" if self.quant_bits else "")
            + (f" group {self.group_size}" if self.group_size else "")
            if self.quant_method
            else ""
        )
        return f"{self.params:,} parameters, {self.bytes:,} bytes in {self.tensor_count} tensors{q}"


_QMETA_SUFFIXES = (
    ".scales",
    ".qzeros",
    ".g_idx",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    ".SCB",
    ".weight_format",
    ".weight_scale",
    ".weight_scale_inv",
    ".input_scale",
    "_scales",
    ".weight_zero_point",
    ".weight_global_scale",
    ".input_global_scale",
    ".k_scale",
    ".v_scale",
    ".weight_shape",
    ".weight_scale_2",
)
_LAYER_RE = re.compile(
    r"(?:^|\.)(?:layers|h|blocks|block|blk|layer|transformer_blocks|single_transformer_blocks)"
    r"\.(\d+)\."
)


def _is_qmeta(name: str) -> bool:
    return name.endswith(_QMETA_SUFFIXES) or ".quant_state." in name


def _unquantized_kind(name: str) -> str:
    n = name.lower()
    if "embed" in n or n.endswith("wte.weight") or "tok_embeddings" in n:
        return "embeddings"
    if "lm_head" in n or n.endswith("output.weight"):
        return "lm_head"
    if "norm" in n or n.endswith("ln_f.weight") or re.search(r"\bln_?\d", n):
        return "norms"
    if n.endswith(".bias"):
        return "biases"
    if "router" in n or ".gate.weight" in n:
        return "routers"
    return "other"


def _compressed_weights(qc: Mapping[str, Any]) -> Mapping[str, Any]:
    groups = qc.get("config_groups")
    if isinstance(groups, Mapping):
        for g in groups.values():
            if isinstance(g, Mapping) and isinstance(g.get("weights"), Mapping):
                w: Mapping[str, Any] = g["weights"]
                return w
    return {}


def _compressed_bits(qc: Mapping[str, Any]) -> int | None:
    v = _compressed_weights(qc).get("num_bits")
    return int(v) if isinstance(v, int) and v > 0 else None


def _compressed_group(qc: Mapping[str, Any]) -> int | None:
    v = _compressed_weights(qc).get("group_size")
    return int(v) if isinstance(v, int) and v > 0 else None


def summarize(
    tensors: Iterable[TensorInfo],
    *,
    source: str,
    files: tuple[str, ...] = (),
    quant_config: Mapping[str, Any] | None = None,
) -> WeightsInfo:
    """Parameter count, bytes per dtype and quantization of a set of tensors (one file or all shards)."""
    tlist = list(tensors)
    names = {t.name for t in tlist}
    params = 0
    total = 0
    bytes_by: dict[str, int] = {}
    params_by: dict[str, int] = {}
    layer_bytes: dict[int, int] = {}
    method: str | None = None
    bits: int | None = None
    group: int | None = None
    qparams = 0
    full_precision: list[str] = []
    qc = dict(quant_config or {})
    for t in tlist:
        total += t.nbytes
        bytes_by[t.dtype] = bytes_by.get(t.dtype, 0) + t.nbytes
        m = _LAYER_RE.search(t.name)
        if m:
            li = int(m.group(1))
            layer_bytes[li] = layer_bytes.get(li, 0) + t.nbytes
        if _is_qmeta(t.name):
            continue
        logical = t.numel
        base = t.name.removesuffix(".qweight")
        if t.name.endswith(".qweight"):
            # GPTQ packs along the input dim ([in*bits/32, out]); AWQ along the output dim ([in, out*bits/32]).
            is_awq = str(qc.get("quant_method", "")).lower() == "awq" or (
                f"{base}.qzeros" in names and f"{base}.g_idx" not in names and qc.get("quant_method") != "gptq"
            )
            b = int(qc.get("bits") or qc.get("w_bit") or 4)
            logical = t.numel * (t.nbytes * 8 // max(1, t.numel)) // b
            method = method or ("awq" if is_awq else "gptq")
            bits = b
            group = int(qc.get("group_size") or qc.get("q_group_size") or 0) or group
            qparams += logical
        elif t.name.endswith(".weight_packed"):
            # compressed-tensors pack-quantized (W4A16 / W8A16): `bits`-bit values packed into int32 rows
            b = int(_compressed_bits(qc) or 4)
            logical = t.numel * (t.nbytes * 8 // max(1, t.numel)) // b
            method, bits = method or "compressed-tensors", b
            group = _compressed_group(qc) or group
            qparams += logical
        elif t.dtype == "U8" and t.name.endswith(".weight") and f"{t.name}_scale_2" in names:
            logical = t.numel * 2  # NVFP4 (ModelOpt): two e2m1 values per byte, fp8 scale per 16, fp32 global scale
            method, bits, group = method or "nvfp4", 4, 16
            qparams += logical
        elif t.name.endswith(("_blocks",)) and t.dtype == "U8" and f"{t.name.removesuffix('_blocks')}_scales" in names:
            logical = t.numel * 2  # MXFP4: two 4-bit values per byte, one shared exponent per 32 in *_scales
            method, bits, group = method or "mxfp4", 4, 32
            qparams += logical
        elif t.dtype == "U8" and any(n.startswith(t.name + ".quant_state.bitsandbytes__") for n in names):
            logical = t.numel * 2
            kind = next(
                (n.rsplit("__", 1)[1] for n in names if n.startswith(t.name + ".quant_state.bitsandbytes__")), "nf4"
            )
            method, bits = method or f"bnb-{kind}", 4
            group = int(qc.get("bnb_4bit_blocksize") or 64)
            qparams += logical
        elif t.dtype == "I8" and f"{t.name.removesuffix('.weight')}.SCB" in names:
            method, bits = method or "bnb-int8", 8
            qparams += logical
        elif t.dtype in ("F8_E4M3", "F8_E5M2"):
            method, bits = method or "fp8", 8
            qparams += logical
        elif t.dtype == "F4" or t.dtype.startswith("F6"):
            method, bits = method or f"fp{DTYPE_BITS[t.dtype]}", DTYPE_BITS[t.dtype]
            qparams += logical
        elif t.dtype in ("F16", "BF16", "F32"):
            full_precision.append(t.name)
        params += logical
        params_by[t.dtype] = params_by.get(t.dtype, 0) + logical
    notes: list[str] = []
    unq = {_unquantized_kind(n) for n in full_precision} if method is not None else set()
    if method is not None:
        notes.append(
            f"quantized with {method}: {qparams:,} of {params:,} parameters; kept in 16/32-bit: "
            f"{', '.join(sorted(unq)) or 'nothing'}"
        )
    return WeightsInfo(
        source=source,
        params=params,
        bytes=total,
        bytes_by_dtype=bytes_by,
        params_by_dtype=params_by,
        quant_method=method,
        quant_bits=bits,
        group_size=group,
        quantized_params=qparams,
        unquantized=tuple(sorted(unq)),
        files=files,
        tensor_count=len(tlist),
        layer_bytes=layer_bytes,
        notes=tuple(notes),
    )


def read_local_weights(path: Path, quant_config: Mapping[str, Any] | None = None) -> WeightsInfo:
    """Headers of one .safetensors file, or of every shard in a folder (through its index when there is one)."""
    if path.is_file():
        h = read_header(path)
        return summarize(h.tensors, source=str(path), files=(path.name,), quant_config=quant_config)
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            if index.stat().st_size > MAX_INDEX_BYTES:
                raise SourceError(f"{index}: too large for a safetensors index")
            files = parse_index(index.read_bytes(), str(index))
        except OSError as exc:
            raise SourceError(f"{index}: cannot read ({exc.strerror})") from exc
        missing = [f for f in files if not (path / f).is_file()]
        if missing:
            raise SourceError(
                f"{path}: shard {missing[0]} named in model.safetensors.index.json is missing "
                f"({len(missing)} of {len(files)} missing)"
            )
    else:
        files = sorted(p.name for p in path.glob("*.safetensors"))
    if not files:
        raise SourceError(f"{path}: no .safetensors files")
    tensors: list[TensorInfo] = []
    for f in files:
        tensors.extend(read_header(path / f).tensors)
    return summarize(tensors, source=str(path), files=tuple(files), quant_config=quant_config)


__all__ = [
    "MAX_HEADER_BYTES",
    "SafetensorsHeader",
    "TensorInfo",
    "WeightsInfo",
    "header_length",
    "parse_header",
    "parse_index",
    "read_header",
    "read_local_weights",
    "summarize",
]
