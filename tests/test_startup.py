"""What `import vram` and the `vram estimate` command path load, and the resolved-model cache.

Start-up speed itself is a benchmark (benchmarks/bench_estimate.py); these tests keep the reasons for it true: no
web framework, database layer, rich tables or YAML on the estimate path, and the catalog read lazily (one file for a
catalog id, no index of every entry).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vram import estimate
from vram.request import Workload
from vram.resolver import CACHE_SIZE, clear_model_cache, resolve_model

HEAVY = (
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "jinja2",
    "redis",
    "rich",
    "yaml",
    "huggingface_hub",
    "numpy",
    "safetensors",
    "gguf",
    "httpx",
)

PROBE = """
import json, sys, io, contextlib
before = set(sys.modules)
{code}
from vram import catalog
new = sorted(set(sys.modules) - before)
print(json.dumps({{"modules": new, "index_reads": catalog._index.cache_info().misses,
                  "entries_read": catalog.load_model_entry.cache_info().currsize}}))
"""


def _probe(code: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VRAM_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    data: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return data


def _heavy(modules: object) -> list[str]:
    assert isinstance(modules, list)
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_import_vram_is_light() -> None:
    got = _probe("import vram")
    assert _heavy(got["modules"]) == []
    assert [m for m in got["modules"] if m in ("typing", "dataclasses", "argparse", "json", "re")] == []
    assert got["index_reads"] == 0 and got["entries_read"] == 0  # no catalog file read at import time
    assert not [
        m for m in got["modules"] if isinstance(m, str) and m.startswith(("vram.web", "vram.cli", "vram.fitting"))
    ]


def test_estimate_command_path_loads_only_what_it_uses() -> None:
    got = _probe(
        "from vram.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    main(['estimate', 'llama-3.1-8b', '--json'])\n"
        "assert json.loads(out.getvalue())['params'] > 8e9"
    )
    assert _heavy(got["modules"]) == []
    # nor the standard modules a catalog id does not need (pathlib with urllib.parse and ipaddress; shutil, which
    # argparse imports for the terminal width; the GPU parser), nor typing and dataclasses (with inspect, ast, dis
    # and tokenize): vram.records and `if TYPE_CHECKING:` imports keep them off the path
    slow = ("pathlib", "shutil", "urllib.parse", "vram.devices", "typing", "dataclasses", "inspect", "ast")
    assert [m for m in got["modules"] if m in slow] == []
    # one catalog file read (the id names it), no alias index built over every entry
    assert got["index_reads"] == 0 and got["entries_read"] == 1
    mods = [m for m in got["modules"] if isinstance(m, str)]
    others = [
        m
        for m in mods
        if m.startswith(
            (
                "vram.web",
                "vram.fitting",
                "vram.training",
                "vram.report",
                "vram.engines.v",
                "vram.engines.llama",
                "vram.sources",
                "vram.families",
                "vram.cli.fit",
                "vram.cli.catalog",
                "vram.fleet",
                "vram.speed",
                "vram.serving",
            )
        )
    ]
    assert others == []


def test_version_builds_no_command_parser() -> None:
    got = _probe(
        "from vram.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    main(['--version'])\n"
        "assert out.getvalue().startswith('vram ')"
    )
    assert [m for m in got["modules"] if isinstance(m, str) and m.startswith(("vram.cli.", "vram.request"))] == []


@pytest.mark.parametrize("columns", ["60", "200"])
def test_help_laid_out_as_argparse_would(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's formatter finds the width without shutil; the help is what argparse's own formatter gives."""
    import argparse

    from vram.cli import build_parser

    monkeypatch.setenv("COLUMNS", columns)
    parser = build_parser("estimate")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["estimate"]
    ours = sub.format_help()
    sub.formatter_class = argparse.HelpFormatter
    assert ours == sub.format_help()
    assert ("\n" + " " * 24) in ours  # help texts start at argparse's column


def test_catalog_name_resolves_once() -> None:
    clear_model_cache()
    a = resolve_model("llama-3.1-8b")
    assert resolve_model("llama-3.1-8b") is a
    assert resolve_model(" llama-3.1-8b ") is a  # the same text once stripped
    # an alias is its own key but the same model
    assert resolve_model("meta-llama/Llama-3.1-8B").spec.params == a.spec.params
    assert estimate("llama-3.1-8b", Workload(context=8192)) == estimate(a, Workload(context=8192))


def _write_config(path: Path, layers: int) -> None:
    cfg = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
    }
    path.write_text(json.dumps(cfg), encoding="utf-8")


def test_config_file_cached_by_mtime_and_size(tmp_path: Path) -> None:
    clear_model_cache()
    cfg = tmp_path / "config.json"
    _write_config(cfg, 2)
    a = resolve_model(str(cfg))
    assert resolve_model(str(cfg)) is a
    assert resolve_model(str(tmp_path)).spec.num_layers == 2  # the folder is a key of its own
    _write_config(cfg, 30)  # a different size
    st = cfg.stat()
    os.utime(cfg, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b = resolve_model(str(cfg))
    assert b is not a and b.spec.num_layers == 30
    assert resolve_model(str(tmp_path)).spec.num_layers == 30
    cfg.unlink()
    with pytest.raises(Exception, match="no such file"):
        resolve_model(str(cfg))


def test_cache_is_bounded(tmp_path: Path) -> None:
    clear_model_cache()
    first = tmp_path / "m0.json"
    for i in range(CACHE_SIZE + 5):
        _write_config(tmp_path / f"m{i}.json", 1 + i % 3)
        resolve_model(str(tmp_path / f"m{i}.json"))
    estimate_module = sys.modules["vram.resolver"]
    assert len(estimate_module._cache) == CACHE_SIZE
    assert ("path", str(first.resolve())) not in {k[:2] for k in estimate_module._cache}  # the oldest went first


def test_cache_is_thread_safe() -> None:
    clear_model_cache()
    names = ["llama-3.1-8b", "qwen2.5-7b", "mixtral-8x7b", "llama-3.2-1b"]
    seen: dict[str, set[int]] = {n: set() for n in names}
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(200):
                n = names[i % len(names)]
                rm = resolve_model(n)
                seen[n].add(rm.spec.params)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(len(v) == 1 for v in seen.values())
    assert resolve_model("qwen2.5-7b") is resolve_model("qwen2.5-7b")


def test_weight_blocks_kept_per_model() -> None:
    """The allocator replay behind `weight_blocks` runs once per model object (an estimate by name stays cheap)."""
    from vram.components import weights

    spec = resolve_model("llama-3.1-8b").spec
    first = weights.weight_blocks(spec, 2.0)
    assert weights._BLOCKS[(id(spec), 2.0)][0] is spec
    weights._BLOCKS.clear()
    assert weights.weight_blocks(spec, 2.0) == first  # replayed again: the same
    assert len(weights._BLOCKS) <= weights.MAX_KEPT_BLOCKS


@pytest.mark.parametrize(
    ("command", "collecting"), [("estimate", False), ("fit", False), ("serve", True), ("mcp", True)]
)
def test_console_script_pauses_the_collector_for_short_commands(
    command: str, collecting: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import vram.cli

    seen: list[bool] = []
    monkeypatch.setattr(vram.cli, "main", lambda argv: seen.append(gc.isenabled()) or 3)
    monkeypatch.setattr(sys, "argv", ["vram", command, "x"])
    try:
        with pytest.raises(SystemExit) as stop:
            vram.cli.run()
    finally:  # this test process keeps its collector (run() froze what was alive)
        gc.unfreeze()
        gc.enable()
    assert stop.value.code == 3  # main's status is the process's
    assert seen == [collecting]


def test_console_script_answers_as_main_does() -> None:
    """The installed `vram` (vram.cli:run) prints what main() prints."""
    script = Path(sys.executable).with_name("vram")
    args = ["estimate", "llama-3.1-8b", "--json"]
    via_script = subprocess.run([str(script), *args], capture_output=True, text=True, check=True).stdout
    code = f"import sys; from vram.cli import main; sys.exit(main({args!r}))"
    via_main = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(via_script) == json.loads(via_main)
    assert json.loads(via_script)["peak_allocated_bytes"] > 15 * 2**30
