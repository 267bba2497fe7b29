"""The `vram` command line: the JSON contract other tools rely on, the human table, the catalogs, and bad input
(exactly one line on stderr, exit status 2, never a traceback). Mostly in-process; a few real subprocesses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GROUNDTRUTH_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "groundtruth"
VRAM_BIN = Path(sys.executable).parent / "vram"
CliResult = Any  # conftest.CliResult: rc, out, err
Run = Callable[..., CliResult]
INT_FIELDS = ("params", "weights_bytes", "kv_cache_bytes", "activation_bytes", "peak_allocated_bytes", "total_bytes")
GIB = 2**30


def _json(res: CliResult) -> dict[str, Any]:
    assert res.rc == 0, res.err
    assert res.err == ""
    data: dict[str, Any] = json.loads(res.out)
    return data


def _check_contract(d: dict[str, Any]) -> None:
    for k in INT_FIELDS:
        assert type(d[k]) is int and d[k] >= 0, k
    assert d["params"] > 0 and d["weights_bytes"] > 0
    assert isinstance(d["breakdown"], list) and d["breakdown"]
    for c in d["breakdown"]:
        assert set(c) >= {"name", "bytes", "explanation"}
        assert type(c["bytes"]) is int and c["bytes"] >= 0
        assert isinstance(c["name"], str) and isinstance(c["explanation"], str) and c["explanation"]
    assert isinstance(d["assumptions"], list) and d["assumptions"]
    assert all(isinstance(a, str) and a for a in d["assumptions"])
    names = [c["name"] for c in d["breakdown"]]
    assert len(names) == len(set(names))
    # the breakdown adds up to the device total, and its parts are the named totals
    assert sum(c["bytes"] for c in d["breakdown"]) == d["total_bytes"]
    by_name = {c["name"]: c["bytes"] for c in d["breakdown"]}
    assert by_name["weights"] == d["weights_bytes"]
    assert by_name["kv_cache"] == d["kv_cache_bytes"]
    assert d["weights_bytes"] < d["peak_allocated_bytes"] <= d["total_bytes"]


# --- estimate --json -----------------------------------------------------------------------------------------------


def test_estimate_json_contract(run_cli: Run) -> None:
    d = _json(run_cli("estimate", "llama-3.1-8b", "--json"))
    _check_contract(d)
    assert d["params"] == 8_030_261_248
    # default workload: one sequence of 4096 prompt tokens (+16 generated), bf16: cache of 32 layers × 8 × 128 × 2
    assert d["kv_cache_bytes"] in (4096 * 131072, (4096 + 16) * 131072)
    assert d["weights_bytes"] >= 2 * d["params"]


def test_estimate_json_accepts_a_config_file_and_a_folder(run_cli: Run, tmp_path: Path) -> None:
    cfg = (
        json.loads((GROUNDTRUTH_DIR / "configs" / "Qwen2.5-0.5B.json").read_text())
        if GROUNDTRUTH_DIR.exists()
        else None
    )
    if cfg is None:
        from vram.catalog import find_model

        cfg = find_model("qwen2.5-0.5b").config
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    args = ("--batch", "2", "--context", "1k", "--new-tokens", "8", "--json")
    from_folder = _json(run_cli("estimate", str(tmp_path / "m"), *args))
    from_file = _json(run_cli("estimate", str(tmp_path / "cfg.json"), *args))
    from_catalog = _json(run_cli("estimate", "Qwen/Qwen2.5-0.5B-Instruct", *args))
    for d in (from_folder, from_file, from_catalog):
        _check_contract(d)
        assert d["params"] == 494_032_768
        assert d["workload"]["context"] == 1024 and d["workload"]["batch"] == 2
    assert (
        from_folder["peak_allocated_bytes"] == from_file["peak_allocated_bytes"] == from_catalog["peak_allocated_bytes"]
    )


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--attn", "eager"),
        ("--dtype", "fp16"),
        ("--kv-dtype", "fp8"),
        ("--quant", "q4_k_m"),
        ("--quant", "gptq-4bit"),
        ("--batch", "4", "--context", "32k"),
        ("--new-tokens", "0"),
    ],
)
def test_estimate_options_keep_the_contract(run_cli: Run, extra: tuple[str, ...]) -> None:
    _check_contract(_json(run_cli("estimate", "qwen2.5-7b", *extra, "--json")))


def test_options_move_the_numbers_the_right_way(run_cli: Run) -> None:
    base = _json(run_cli("estimate", "qwen2.5-7b", "--json"))
    longer = _json(run_cli("estimate", "qwen2.5-7b", "--context", "16k", "--json"))
    batch = _json(run_cli("estimate", "qwen2.5-7b", "--batch", "4", "--json"))
    q4 = _json(run_cli("estimate", "qwen2.5-7b", "--quant", "q4_k_m", "--json"))
    kv8 = _json(run_cli("estimate", "qwen2.5-7b", "--kv-dtype", "int8", "--json"))
    assert longer["kv_cache_bytes"] == 4 * base["kv_cache_bytes"]
    assert batch["kv_cache_bytes"] == 4 * base["kv_cache_bytes"]
    assert q4["weights_bytes"] < 0.4 * base["weights_bytes"]
    assert kv8["kv_cache_bytes"] == base["kv_cache_bytes"] // 2
    assert longer["peak_allocated_bytes"] > base["peak_allocated_bytes"]
    assert q4["params"] == base["params"] == kv8["params"]


# --- human output ------------------------------------------------------------------------------------------------


def test_estimate_human_table_and_summary(run_cli: Run) -> None:
    res = run_cli("estimate", "llama-3.1-8b", "--context", "8k")
    assert res.rc == 0 and res.err == ""
    d = _json(run_cli("estimate", "llama-3.1-8b", "--context", "8k", "--json"))
    for col in ("component", "GiB", "share"):
        assert col in res.out
    for c in d["breakdown"]:
        assert c["name"] in res.out
        assert f"{c['bytes'] / GIB:,.2f}" in res.out  # same numbers as --json
    summary = [line for line in res.out.splitlines() if "peak allocated" in line]
    assert len(summary) == 1
    m = re.search(
        r"llama-3\.1-8b: ([\d.]+)B params · peak allocated ([\d,.]+) GiB · device total ([\d,.]+) GiB", summary[0]
    )
    assert m, summary[0]
    assert m.group(1) == f"{d['params'] / 1e9:.2f}"
    assert m.group(2) == f"{d['peak_allocated_bytes'] / GIB:,.2f}"
    assert m.group(3) == f"{d['total_bytes'] / GIB:,.2f}"


# --- catalogs ------------------------------------------------------------------------------------------------------


def test_models_json(run_cli: Run) -> None:
    res = run_cli("models", "--json")
    assert res.rc == 0
    rows = json.loads(res.out)
    assert len(rows) >= 60
    ids = {r["id"] for r in rows}
    assert {"llama-3.1-8b", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-120b", "lfm2-1.2b"} <= ids
    for r in rows:
        assert type(r["params"]) is int and r["params"] > 0
        assert r["hf_repo"] and r["name"]


def test_models_query(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich truncates cells to fit the terminal
    rows = json.loads(run_cli("models", "mixtral", "--json").out)
    assert sorted(r["id"] for r in rows) == ["mixtral-8x22b", "mixtral-8x7b"]
    human = run_cli("models", "mixtral")
    assert human.rc == 0 and "mixtral-8x7b" in human.out and "mixtral-8x22b" in human.out
    assert "llama" not in human.out
    assert json.loads(run_cli("models", "no-such-thing", "--json").out) == []


def test_gpus(run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    rows = json.loads(run_cli("gpus", "--json").out)
    assert len(rows) >= 40
    assert all(type(r["memory_bytes"]) is int and r["memory_bytes"] > 0 for r in rows)
    h100 = json.loads(run_cli("gpus", "h100", "--json").out)
    assert "h100-sxm" in {r["id"] for r in h100}
    assert all("h100" in r["id"] for r in h100)
    human = run_cli("gpus", "4090")
    assert human.rc == 0 and "rtx-4090" in human.out and "GB" in human.out


# --- bad input ---------------------------------------------------------------------------------------------------


def _assert_one_line_error(res: CliResult, *needles: str) -> None:
    assert res.rc == 2, (res.rc, res.err)
    assert res.out == ""
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("vram: error: ")
    assert "Traceback" not in res.err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize(
    "args,needles",
    [
        (("estimate", "llama-3.1-7b"), ("unknown model", "llama-3.1-8b")),
        (("estimate", "mistral-7b-v0.4"), ("unknown model", "mistral-7b-v0.3")),
        (("estimate", "llama-3.1-8b", "--batch", "0"), ("batch",)),
        (("estimate", "llama-3.1-8b", "--batch", "-3"), ("batch",)),
        (("estimate", "llama-3.1-8b", "--batch", "many"), ("batch",)),
        (("estimate", "llama-3.1-8b", "--batch", "100000000"), ("batch",)),
        (("estimate", "llama-3.1-8b", "--context", "-5"), ("context",)),
        (("estimate", "llama-3.1-8b", "--context", "0"), ("context",)),
        (("estimate", "llama-3.1-8b", "--context", "1000000000000"), ("context",)),
        (("estimate", "llama-3.1-8b", "--context", "32q"), ("context",)),
        (("estimate", "llama-3.1-8b", "--new-tokens", "-1"), ("new_tokens",)),
        (("estimate", "llama-3.1-8b", "--dtype", "fp12"), ("dtype", "fp12")),
        (("estimate", "llama-3.1-8b", "--kv-dtype", "fp3"), ("kv_dtype", "fp3")),
        (("estimate", "llama-3.1-8b", "--quant", "q9_k"), ("quant", "q9_k")),
        (("estimate", "llama-3.1-8b", "--engine", "tensorrt"), ("engine",)),
        (("estimate", "llama-3.1-8b", "--gpu-memory-utilization", "3"), ("gpu_memory_utilization",)),
        (("estimate",), ("model",)),
        (("estimate", ""), ("model",)),
        (("frobnicate",), ("frobnicate",)),
    ],
)
def test_bad_arguments(run_cli: Run, args: tuple[str, ...], needles: tuple[str, ...]) -> None:
    _assert_one_line_error(run_cli(*args), *needles)


LLAMA_TINY = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 100,
}

# (file name, contents as bytes, words the error must contain)
BAD_FILES: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("invalid.json", b'{"model_type": "llama", ', ("not valid JSON",)),
    ("empty.json", b"", ("not valid JSON",)),
    ("garbage.json", bytes(range(256)) * 4, ("garbage.json",)),
    ("list.json", b"[1, 2, 3]", ("JSON object",)),
    ("no_type.json", json.dumps({"hidden_size": 64}).encode(), ("model_type",)),
    ("bert.json", json.dumps({"model_type": "bert", "hidden_size": 64}).encode(), ("unsupported", "bert")),
    (
        "gpt2.json",
        json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}).encode(),
        ("unsupported", "gpt2"),
    ),
    ("str_hidden.json", json.dumps({**LLAMA_TINY, "hidden_size": "big"}).encode(), ("hidden_size",)),
    ("frac_layers.json", json.dumps({**LLAMA_TINY, "num_hidden_layers": 2.5}).encode(), ("num_hidden_layers",)),
    ("neg_vocab.json", json.dumps({**LLAMA_TINY, "vocab_size": -1}).encode(), ("vocab_size",)),
    ("zero_vocab.json", json.dumps({**LLAMA_TINY, "vocab_size": 0}).encode(), ("vocab_size",)),
    ("no_layers.json", json.dumps({**LLAMA_TINY, "num_hidden_layers": 0}).encode(), ("layers",)),
    (
        "mamba_no_width.json",
        json.dumps({"model_type": "mamba", "num_hidden_layers": 4}).encode(),
        ("missing", "hidden_size"),
    ),
    (
        "gemma3_no_layers.json",
        json.dumps({"model_type": "gemma3", "text_config": {}, "vision_config": {"hidden_size": 8}}).encode(),
        ("num_hidden_layers",),
    ),
]


@pytest.mark.parametrize("name,content,needles", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_config_files(run_cli: Run, tmp_path: Path, name: str, content: bytes, needles: tuple[str, ...]) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    _assert_one_line_error(run_cli("estimate", str(p), "--json"), *needles)


def test_folder_without_config(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("no config here")
    _assert_one_line_error(run_cli("estimate", str(tmp_path)), "config.json")


def test_missing_file(run_cli: Run, tmp_path: Path) -> None:
    _assert_one_line_error(run_cli("estimate", str(tmp_path / "nope.json")), "nope.json", "no such file")


def test_config_that_is_a_directory(run_cli: Run, tmp_path: Path) -> None:
    (tmp_path / "m" / "config.json").mkdir(parents=True)
    _assert_one_line_error(run_cli("estimate", str(tmp_path / "m")), "config.json")


def test_huge_file_is_refused(run_cli: Run, tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_bytes(b" " * (9 * 1024 * 1024) + json.dumps(LLAMA_TINY).encode())
    _assert_one_line_error(run_cli("estimate", str(p)), "too large")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(run_cli: Run, tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(LLAMA_TINY))
    p.chmod(0)
    try:
        _assert_one_line_error(run_cli("estimate", str(p)), "cannot read")
    finally:
        p.chmod(0o644)


def test_permission_denied_simulated(run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same as above for any user (root can read a mode-000 file): the read itself raises PermissionError."""
    p = tmp_path / "config.json"
    p.write_text(json.dumps(LLAMA_TINY))
    real_read = Path.read_text

    def read_text(self: Path, *a: Any, **k: Any) -> str:
        if self == p:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *a, **k)

    monkeypatch.setattr(Path, "read_text", read_text)
    _assert_one_line_error(run_cli("estimate", str(p)), "cannot read", "PermissionError")


def test_valid_tiny_config_works(run_cli: Run, tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(LLAMA_TINY))
    d = _json(run_cli("estimate", str(p), "--json"))
    # embed + untied head + 2 layers × (4 attention 64×64 + 3 MLP 64×128 + 2 norms) + final norm
    assert d["params"] == 100 * 64 * 2 + 2 * (4 * 64 * 64 + 3 * 64 * 128 + 2 * 64) + 64


# --- as a real program ---------------------------------------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS",)}
    return subprocess.run([str(VRAM_BIN), *args], capture_output=True, text=True, timeout=60, env=env)


def test_subprocess_estimate_json() -> None:
    p = _run("estimate", "meta-llama/Llama-3.1-8B-Instruct", "--context", "32k", "--json")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    d = json.loads(p.stdout)
    _check_contract(d)
    assert d["params"] == 8_030_261_248
    assert d["kv_cache_bytes"] >= 32 * 1024 * 131072


def test_subprocess_bad_input_one_line() -> None:
    for args, needle in (
        (("estimate", "llama-3.1-7b"), "did you mean"),
        (("estimate", "qwen2.5-7b", "--batch", "0"), "batch"),
    ):
        p = _run(*args)
        assert p.returncode == 2
        assert p.stdout == ""
        assert len(p.stderr.splitlines()) == 1 and needle in p.stderr and "Traceback" not in p.stderr


def test_subprocess_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "config.json"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    r = _run("estimate", str(p), "--json")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr


def test_python_dash_m_vram_gives_the_same_answer() -> None:
    args = ["estimate", "llama-3.2-1b", "--context", "2k", "--json"]
    via_module = subprocess.run([sys.executable, "-m", "vram", *args], capture_output=True, text=True, timeout=60)
    via_script = _run(*args)
    assert via_module.returncode == via_script.returncode == 0, via_module.stderr
    assert json.loads(via_module.stdout) == json.loads(via_script.stdout)
    bad = subprocess.run(
        [sys.executable, "-m", "vram", "estimate", "llama-3.2-1b", "--batch", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_subprocess_models_and_gpus() -> None:
    m = _run("models", "--json")
    g = _run("gpus", "--json")
    assert m.returncode == 0 and g.returncode == 0
    assert len(json.loads(m.stdout)) >= 60 and len(json.loads(g.stdout)) >= 40


@pytest.mark.parametrize(
    "argv",
    [
        ("estimate", "llama-3.1-8b", "--gpu-mem", "0.5", "--json"),  # a prefix of --gpu-memory-utilization
        ("fit", "llama-3.1-8b", "--gpu", "h100-sxm", "--cont", "8k", "--json"),  # a prefix of --context
    ],
)
def test_option_prefixes_are_not_taken_for_options(run_cli: Run, argv: tuple[str, ...]) -> None:
    r = run_cli(*argv)
    assert r.rc == 2
    assert "unrecognized arguments" in r.err and len(r.err.strip().splitlines()) == 1


def test_catalog_ids_are_never_cut_short_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The id is what one types next: on an 80-column terminal `vram gpus` and `vram which` print every id whole."""
    from cli_support import call_cli

    monkeypatch.setenv("COLUMNS", "80")
    rc, out, _ = call_cli(["gpus"])
    assert rc == 0
    for gpu_id in ("radeon-ai-pro-r9700", "radeon-pro-w7900", "gtx-1080-ti", "rtx-4060-ti-16gb"):
        assert f"│ {gpu_id} " in out, gpu_id
    rc, out, _ = call_cli(["which", "llama-3.1-8b", "--engine", "llama.cpp", "--quant", "q4_k_m"])
    assert (
        rc == 0
        and "│ rtx-4060-ti-16gb " in out
        and "…" not in "".join(line.split("│")[1] for line in out.splitlines() if line.startswith("│"))
    )
