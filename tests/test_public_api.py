"""The public API: every name in vram.__all__ resolves, and the CLI and library give the same numbers."""

from __future__ import annotations

import json

import vram
from vram.cli import main


def test_every_exported_name_resolves() -> None:
    for name in vram.__all__:
        assert getattr(vram, name) is not None, name


def test_exports_cover_the_entry_points() -> None:
    for name in (
        "estimate",
        "estimate_training",
        "Workload",
        "TrainWorkload",
        "Estimate",
        "find_model",
        "find_gpu",
        "model_from_config",
        "VramError",
    ):
        assert name in vram.__all__


def test_cli_json_equals_library(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["estimate", "qwen2.5-7b", "--context", "8k", "--batch", "2", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    lib = vram.estimate("qwen2.5-7b", vram.Workload(context=8192, batch=2)).to_dict()
    for key in ("params", "weights_bytes", "kv_cache_bytes", "activation_bytes", "peak_allocated_bytes", "total_bytes"):
        assert cli[key] == lib[key]
    assert [c["bytes"] for c in cli["breakdown"]] == [c["bytes"] for c in lib["breakdown"]]
