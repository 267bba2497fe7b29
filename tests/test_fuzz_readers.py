"""Hostile input for the readers: config.json, safetensors headers and GGUF files (hypothesis).

Whatever the bytes — random, truncated, absurd lengths and counts, JSON of the wrong types, offsets past the end —
a reader either returns a description or raises a `vram.errors.VramError` subclass: never another exception, never
a hang (each call runs under an alarm), and never much memory (tracemalloc peaks stay under a few MiB for tiny
inputs that claim huge sizes).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vram.catalog import find_model
from vram.errors import ConfigError, SourceError, VramError
from vram.inference import estimate
from vram.model import load_config_file, model_from_config
from vram.request import Workload
from vram.sources import resolve_local_weights
from vram.sources.gguf import read_gguf
from vram.sources.safetensors import MAX_HEADER_BYTES, header_length, parse_header, read_header

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MIB = 1024 * 1024
# a hang detector, not a speed target (speed lives in benchmarks/): generous, so a loaded CI machine never trips it
CALL_TIMEOUT_S = 30.0


class Hang(Exception):
    pass


@contextlib.contextmanager
def alarm(seconds: float = CALL_TIMEOUT_S) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the body runs longer than `seconds`."""

    def _raise(signum: int, frame: Any) -> None:
        raise Hang(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def outcome(fn: Callable[[], Any], seconds: float = CALL_TIMEOUT_S) -> Any:
    """Run a reader: its result, or the VramError it raised. Anything else (or a hang) fails the test."""
    with alarm(seconds):
        try:
            return fn()
        except VramError as exc:
            assert str(exc), "a VramError must say what is wrong"
            return exc


def peak_bytes(fn: Callable[[], Any], seconds: float = CALL_TIMEOUT_S) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = outcome(fn, seconds)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


# ---------------------------------------------------------------------------------------------------------------
# JSON values of every type, and the absurd numbers hostile configs use

absurd_ints = st.sampled_from([-1, 0, 1, 2**31, 2**53 + 1, 2**63, 2**64 + 7, 10**30, -(2**63)])
absurd_floats = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0.5, 3.0, 1e-300])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    absurd_ints,
    absurd_floats,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)
BASE_CONFIGS = {
    m: find_model(m).config
    for m in (
        "llama-3.1-8b",
        "qwen2.5-7b",
        "gemma-2-9b",
        "mixtral-8x7b",
        "deepseek-v2-lite",
        "gpt-oss-20b",
        "lfm2-350m",
        "phi-3-mini-4k",
        "falcon3-1b",
        "gemma-3-4b",
        "qwen3-30b-a3b",
    )
}
ALL_KEYS = sorted(
    {k for c in BASE_CONFIGS.values() for k in c}
    | {"text_config", "vision_config", "layer_types", "sliding_window_pattern", "mlp_only_layers"}
)


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    cfg = json.loads(json.dumps(BASE_CONFIGS[draw(st.sampled_from(sorted(BASE_CONFIGS)))]))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(ALL_KEYS + sorted(cfg)))
        action = draw(st.sampled_from(("set", "delete", "absurd")))
        if action == "delete":
            cfg.pop(key, None)
        elif action == "absurd":
            cfg[key] = draw(st.one_of(absurd_ints, absurd_floats))
        else:
            cfg[key] = draw(json_values)
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# config.json


@FUZZ
@given(cfg=mutated_configs())
def test_model_from_config_on_mutated_configs(cfg: dict[str, Any]) -> None:
    spec = outcome(lambda: model_from_config(cfg, name="fuzz"))
    if isinstance(spec, VramError):
        assert isinstance(spec, ConfigError | VramError)
        return
    assert spec.params >= 0 and spec.num_layers >= 1
    # whatever was accepted estimates, or is refused with a VramError
    est = outcome(lambda: estimate(spec, Workload(context=512)))
    if not isinstance(est, VramError):
        assert est.total_bytes >= est.weights_bytes >= 0


@FUZZ
@given(cfg=json_values)
def test_model_from_config_on_any_json_value(cfg: Any) -> None:
    outcome(lambda: model_from_config(cfg, name="fuzz"))


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=512),
        st.text(max_size=256).map(str.encode),
        json_values.map(lambda v: json.dumps(v).encode()),
    )
)
@example(data=b"\xff\xfe{}")
@example(data=b"")
@example(data=b'{"model_type": "llama"}')
def test_load_config_file_on_any_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("cfg") / "config.json"
    p.write_bytes(data)
    got = outcome(lambda: load_config_file(p))
    if isinstance(got, dict):
        outcome(lambda: model_from_config(got, name="fuzz"))


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deeply_nested_config_json_is_a_config_error(tmp_path: Path, opener: str) -> None:
    p = tmp_path / "config.json"
    p.write_text(opener * 200_000)
    with alarm(), pytest.raises(ConfigError):
        load_config_file(p)


@pytest.mark.parametrize("key", ["num_hidden_layers", "n_layer"])
def test_a_config_claiming_a_billion_layers_is_refused_cheaply(key: str) -> None:
    cfg = {
        "model_type": "llama" if key == "num_hidden_layers" else "falcon",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "vocab_size": 100,
        "intermediate_size": 128,
        key: 10**9,
    }
    got, peak = peak_bytes(lambda: model_from_config(cfg, name="huge"), seconds=20.0)
    assert isinstance(got, ConfigError), got
    assert peak < 4 * MIB


def test_an_8_mib_config_is_refused_without_reading_it(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    with p.open("wb") as f:
        f.truncate(64 * MIB)  # sparse: 64 MiB of zeros claimed, none written
    got, peak = peak_bytes(lambda: load_config_file(p))
    assert isinstance(got, ConfigError) and "too large" in str(got)
    assert peak < MIB


# ---------------------------------------------------------------------------------------------------------------
# safetensors headers

ST_DTYPES = ["F32", "F16", "BF16", "I8", "F8_E4M3", "F4", "C64", "F99", "", "f32"]
dims = st.one_of(st.integers(0, 64), absurd_ints, st.sampled_from(["2", 2.0, None, True, [1]]))
tensor_entries = st.fixed_dictionaries(
    {
        "dtype": st.one_of(st.sampled_from(ST_DTYPES), scalars),
        "shape": st.one_of(st.lists(dims, max_size=4), st.lists(st.just(1), min_size=17, max_size=20), scalars),
        "data_offsets": st.one_of(
            st.lists(st.one_of(st.integers(0, 4096), absurd_ints), min_size=0, max_size=3), scalars
        ),
    }
)
headers = st.one_of(
    st.dictionaries(st.text(max_size=10), st.one_of(tensor_entries, json_values), max_size=5),
    st.dictionaries(st.text(max_size=10), tensor_entries, max_size=5).map(
        lambda d: {**d, "__metadata__": {"format": "pt"}}
    ),
    json_values,
)


def _safetensors_bytes(header: bytes, claimed: int | None, data: bytes) -> bytes:
    n = len(header) if claimed is None else claimed
    return struct.pack("<Q", n % 2**64) + header + data


@FUZZ
@given(
    header=headers,
    claimed=st.one_of(st.none(), st.integers(0, 2**64 - 1), absurd_ints.map(abs)),
    data_len=st.integers(0, 4096),
)
def test_safetensors_header_fuzz(
    tmp_path_factory: pytest.TempPathFactory, header: Any, claimed: int | None, data_len: int
) -> None:
    raw = json.dumps(header).encode()
    p = tmp_path_factory.mktemp("st") / "model.safetensors"
    p.write_bytes(_safetensors_bytes(raw, claimed, b"\0" * data_len))
    got = outcome(lambda: read_header(p))
    if isinstance(got, VramError):
        assert isinstance(got, SourceError)
        return
    size = p.stat().st_size
    assert got.header_bytes <= size and got.header_bytes + got.data_bytes <= size
    for t in got.tensors:
        assert t.nbytes >= 0 and t.numel >= 0


@FUZZ
@given(data=st.binary(max_size=600))
def test_safetensors_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("st") / "model.safetensors"
    p.write_bytes(data)
    got = outcome(lambda: read_header(p))
    assert not isinstance(got, VramError) or isinstance(got, SourceError)
    # the parser alone, with and without a bound on the data
    outcome(lambda: parse_header(data, data_size=None, source="fuzz"))
    outcome(lambda: parse_header(data, data_size=0, source="fuzz"))


@FUZZ
@given(first8=st.binary(max_size=12), size=st.one_of(st.none(), st.integers(0, 2**64)))
def test_safetensors_header_length(first8: bytes, size: int | None) -> None:
    got = outcome(lambda: header_length(first8, size, "fuzz"))
    if not isinstance(got, VramError):
        assert 2 <= got <= MAX_HEADER_BYTES and (size is None or 8 + got <= size)


def test_deeply_nested_safetensors_header_is_a_source_error(tmp_path: Path) -> None:
    raw = b"[" * 200_000
    p = tmp_path / "model.safetensors"
    p.write_bytes(_safetensors_bytes(raw, None, b""))
    with alarm(), pytest.raises(SourceError):
        read_header(p)


@pytest.mark.parametrize("claimed", [2**63, MAX_HEADER_BYTES, MAX_HEADER_BYTES + 1, 2**32])
def test_tiny_safetensors_claiming_a_huge_header_costs_no_memory(tmp_path: Path, claimed: int) -> None:
    p = tmp_path / "model.safetensors"
    p.write_bytes(_safetensors_bytes(b"{}", claimed, b""))
    got, peak = peak_bytes(lambda: read_header(p))
    assert isinstance(got, SourceError)
    assert peak < MIB


def test_tiny_safetensors_claiming_huge_tensors_costs_no_memory(tmp_path: Path) -> None:
    header = {f"t{i}": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4 * 2**80]} for i in range(50)}
    p = tmp_path / "model.safetensors"
    p.write_bytes(_safetensors_bytes(json.dumps(header).encode(), None, b"\0" * 16))
    got, peak = peak_bytes(lambda: read_header(p))
    assert isinstance(got, SourceError) and "past the end" in str(got)
    assert peak < 2 * MIB


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["model.embed_tokens.weight", "lm_head.weight", "x"]), tensor_entries, max_size=3
    ),
    cfg=mutated_configs(),
)
def test_safetensors_folder_with_hostile_config(
    tmp_path_factory: pytest.TempPathFactory, header: dict[str, Any], cfg: dict[str, Any]
) -> None:
    d = tmp_path_factory.mktemp("folder")
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "model.safetensors").write_bytes(_safetensors_bytes(json.dumps(header).encode(), None, b"\0" * 64))
    got = outcome(lambda: resolve_local_weights(d))
    if not isinstance(got, VramError):
        outcome(lambda: estimate(got, Workload(context=256)))


# ---------------------------------------------------------------------------------------------------------------
# GGUF


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    pytest.importorskip("gguf")
    from vram.sources.synth import TinyModel, write_gguf

    p = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_gguf(p, TinyModel(n_embd=64, n_layer=2, n_head=2, n_head_kv=1, head_dim=32, n_ff=128, n_vocab=300))
    return p.read_bytes()


def _gguf_outcome(path: Path) -> Any:
    got = outcome(lambda: read_gguf(path))
    if isinstance(got, VramError):
        assert isinstance(got, SourceError), got
        return got
    size = path.stat().st_size
    for t in got.tensors:
        assert 0 <= t.nbytes <= size and t.n_elements >= 0
    rm = outcome(lambda: resolve_local_weights(path))
    if not isinstance(rm, VramError):
        outcome(lambda: estimate(rm, Workload.from_flat(context=256, engine="llama.cpp")))
    return got


def test_the_unmutated_tiny_gguf_reads(tmp_path: Path, tiny_gguf: bytes) -> None:
    p = tmp_path / "tiny.gguf"
    p.write_bytes(tiny_gguf)
    g = _gguf_outcome(p)
    assert not isinstance(g, VramError) and g.architecture == "llama"


@FUZZ
@given(cut=st.integers(0, 10**9))
def test_gguf_truncated_anywhere(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: bytes, cut: int) -> None:
    p = tmp_path_factory.mktemp("gguf") / "cut.gguf"
    p.write_bytes(tiny_gguf[: cut % len(tiny_gguf)])
    _gguf_outcome(p)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, 10**9),
            st.one_of(
                st.binary(min_size=1, max_size=8),
                st.sampled_from(
                    [
                        struct.pack("<Q", 2**63),
                        struct.pack("<Q", 2**64 - 1),
                        struct.pack("<I", 2**32 - 1),
                        struct.pack("<Q", 10**12),
                        struct.pack("<I", 0),
                        struct.pack("<I", 9),
                        struct.pack("<I", 12),
                    ]
                ),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_gguf_with_overwritten_bytes(
    tmp_path_factory: pytest.TempPathFactory, tiny_gguf: bytes, edits: list[tuple[int, bytes]]
) -> None:
    """Counts, lengths, types and offsets overwritten with absurd values (mostly in the header, where they bite)."""
    data = bytearray(tiny_gguf)
    header_end = min(len(data), 4096)
    for pos, new in edits:
        at = pos % header_end if pos % 4 else pos % len(data)
        data[at : at + len(new)] = new
    p = tmp_path_factory.mktemp("gguf") / "edit.gguf"
    p.write_bytes(bytes(data[: len(tiny_gguf)]))
    _gguf_outcome(p)


@FUZZ
@given(body=st.binary(max_size=400))
def test_gguf_random_bytes_after_the_magic(tmp_path_factory: pytest.TempPathFactory, body: bytes) -> None:
    p = tmp_path_factory.mktemp("gguf") / "rand.gguf"
    p.write_bytes(b"GGUF" + body)
    _gguf_outcome(p)


def test_a_gguf_claiming_a_billion_blocks_is_refused_cheaply(tmp_path: Path, tiny_gguf: bytes) -> None:
    key = b"llama.block_count"
    at = tiny_gguf.index(key) + len(key)
    assert struct.unpack_from("<I", tiny_gguf, at) == (4,)  # a uint32 value follows
    data = bytearray(tiny_gguf)
    struct.pack_into("<I", data, at + 4, 2**32 - 1)
    p = tmp_path / "deep.gguf"
    p.write_bytes(bytes(data))
    got, peak = peak_bytes(lambda: resolve_local_weights(p), seconds=20.0)
    assert isinstance(got, VramError), got
    assert peak < 4 * MIB


@pytest.mark.parametrize(("n_tensors", "n_kv"), [(2**63, 0), (0, 2**63), (2**20, 0), (0, 2**20), (2**64 - 1, 1)])
def test_tiny_gguf_claiming_huge_counts_costs_no_memory(tmp_path: Path, n_tensors: int, n_kv: int) -> None:
    p = tmp_path / "huge.gguf"
    p.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv) + b"\0" * 64)
    got, peak = peak_bytes(lambda: read_gguf(p))
    assert isinstance(got, SourceError)
    assert peak < 4 * MIB


def test_tiny_gguf_with_a_string_claiming_2_63_bytes(tmp_path: Path) -> None:
    key = b"general.architecture"
    body = struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key + struct.pack("<I", 8)
    p = tmp_path / "s.gguf"
    p.write_bytes(b"GGUF" + body + struct.pack("<Q", 2**63) + b"llama")
    got, peak = peak_bytes(lambda: read_gguf(p))
    assert isinstance(got, SourceError)
    assert peak < 4 * MIB


def test_fuzz_leaves_no_alarm_behind() -> None:
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
