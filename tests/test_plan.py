"""vram plan: models -> smallest pool with headroom, leftovers, what fits nowhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vram.errors import BadInput, UnknownGpu
from vram.fitting import fit
from vram.fleet import load_fleet, parse_fleet, plan

Run = Callable[..., Any]


def test_example_fleet(repo_root: Path) -> None:
    fleet = load_fleet(repo_root / "examples" / "fleet.yaml")
    result = plan(fleet)
    placed = {a.model: a for a in result.assignments}
    assert "llama-3.1-70b" in placed and placed["llama-3.1-70b"].pool == "h100"
    assert placed["qwen2.5-7b"].pool == "rtx4090"  # the smallest pool that holds it
    assert [u["model"] for u in result.unplaced] == ["deepseek-v3"]
    assert set(result.unplaced[0]["reasons"]) == {"h100", "l40s", "rtx4090"}
    # capacity is respected and leftovers add up
    for pool in fleet.pools:
        used = sum(a.gpus_per_replica * a.replicas for a in result.assignments if a.pool == pool.name)
        left = next(x for x in result.leftover if x["pool"] == pool.name)
        assert used + left["gpus_free"] == pool.gpus
    for a in result.assignments:
        assert a.fit.verdict == "fits"
        assert a.fit.serving["vllm"]["command"].startswith("vllm serve")


def test_smallest_pool_and_replicas() -> None:
    fleet = parse_fleet(
        {
            "pools": [
                {"name": "big", "gpu": "h200", "gpus_per_node": 8, "nodes": 1},
                {"name": "small", "gpu": "l4", "gpus_per_node": 1, "nodes": 3},
            ],
            "models": [{"model": "qwen2.5-0.5b", "context": 4096, "concurrency": 4, "replicas": 3}],
        }
    )
    r = plan(fleet)
    a = r.assignments[0]
    assert (a.pool, a.gpus_per_replica, a.replicas, sorted(a.nodes)) == ("small", 1, 3, [0, 1, 2])
    # a fourth replica does not fit the small pool: it moves to the big one
    fleet = parse_fleet(
        {
            **{
                "pools": [
                    {"name": "big", "gpu": "h200", "gpus_per_node": 8},
                    {"name": "small", "gpu": "l4", "gpus_per_node": 1, "nodes": 3},
                ]
            },
            "models": [{"model": "qwen2.5-0.5b", "replicas": 4}],
        }
    )
    assert plan(fleet).assignments[0].pool == "big"


def test_assignment_matches_fit() -> None:
    fleet = parse_fleet(
        {
            "pools": [{"gpu": "a100-80gb-sxm", "gpus_per_node": 8}],
            "models": [{"model": "llama-3.1-70b", "context": "8k", "concurrency": 8}],
        }
    )
    a = plan(fleet).assignments[0]
    direct = fit("llama-3.1-70b", f"{a.gpus_per_replica}xa100-80gb-sxm", fleet.models[0].workload(), solve=False)
    assert direct.per_gpu_bytes == a.fit.per_gpu_bytes and direct.verdict == "fits"
    smaller = fit("llama-3.1-70b", f"{a.gpus_per_replica // 2}xa100-80gb-sxm", fleet.models[0].workload(), solve=False)
    assert smaller.verdict != "fits"


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"pools": []},
        {"pools": [{"gpu": "h100"}], "models": []},
        {"pools": [{"nodes": 1}], "models": ["x"]},
        {"pools": [{"gpu": "h100", "nodes": 0}], "models": ["llama-3.1-8b"]},
        {"pools": [{"gpu": "h100"}], "models": [{"model": "llama-3.1-8b", "context": "lots"}]},
        {"pools": [{"gpu": "h100"}], "models": ["llama-3.1-8b"], "headroom": "big"},
    ],
)
def test_bad_fleets(bad: Any) -> None:
    with pytest.raises(BadInput):
        parse_fleet(bad)


def test_unknown_gpu_and_model() -> None:
    with pytest.raises(UnknownGpu):
        parse_fleet({"pools": [{"gpu": "h1000"}], "models": ["llama-3.1-8b"]})
    r = plan(parse_fleet({"pools": [{"gpu": "h100"}], "models": ["no-such-model"]}))
    assert r.unplaced and "unknown model" in r.unplaced[0]["reasons"]["*"]


def test_cli_json_and_errors(run_cli: Run, repo_root: Path, tmp_path: Path) -> None:
    res = run_cli("plan", str(repo_root / "examples" / "fleet.yaml"), "--json")
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    assert {"assignments", "unplaced", "leftover"} <= set(d)
    p = tmp_path / "fleet.json"
    p.write_text(
        json.dumps(
            {
                "pools": [{"gpu": "rtx-4090", "gpus_per_node": 2}],
                "models": [{"model": "llama-3.1-8b", "context": 4096, "concurrency": 2}],
            }
        )
    )
    res = run_cli("plan", str(p))
    assert res.rc == 0 and "llama-3.1-8b" in res.out and "vllm serve" in res.out
    p.write_text("{not json")
    res = run_cli("plan", str(p))
    assert res.rc == 2 and "not valid JSON" in res.err
    assert run_cli("plan", str(tmp_path / "missing.yaml")).rc == 2
