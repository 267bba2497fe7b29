"""`vram models --fits`: what runs on a 16 GB RTX 4060 Ti (llama.cpp, 8k) and a 48 GB M4 Pro, from the per-tensor
estimates (the same `vram fit` makes), ranked largest first at the best weight format that fits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from vram.catalog import find_gpu
from vram.fitting import fit
from vram.hardware import models_for
from vram.request import Workload

Run = Callable[..., Any]
GIB = 2**30


@pytest.fixture(scope="module")
def ti16() -> list[Any]:
    return models_for("rtx-4060-ti-16gb", engine="llama.cpp", context=8192)


@pytest.fixture(scope="module")
def m4pro() -> list[Any]:
    return models_for("m4-pro-48gb", engine="llama.cpp", context=8192)


def test_4060_ti_16gb_ranking(ti16: list[Any]) -> None:
    ids = [m.model for m in ti16]
    top = {m.model: m for m in ti16}
    # the largest that fits at 4 bits or more ranks first (Gemma 4 26B-A4B at Q4_K_S); Mistral Small 24B runs at
    # Q4_K_M (14.3 GiB of 16 with 8k of KV cache)
    assert ids[0] == max((m for m in ti16 if not m.low_bit), key=lambda m: m.params).model
    assert top["mistral-small-24b-2501"].quant == "q4_k_m"
    # 14B models at Q6_K, 8B models at Q8_0, 7B and smaller unquantized
    assert top["qwen2.5-14b"].quant == "q6_k" and top["llama-3.1-8b"].quant == "q8_0"
    assert top["qwen2.5-7b"].quant == "bfloat16"
    # nothing of 70B runs at 4 bits or more; a 32B only below 4 bits, ranked after every 4-bit-or-better model
    assert all(m.params < 30e9 for m in ti16 if not m.low_bit)
    first_low = next(i for i, m in enumerate(ti16) if m.low_bit)
    assert all(m.low_bit for m in ti16[first_low:])
    # larger first within the tier
    normal = [m.params for m in ti16 if not m.low_bit]
    assert normal == sorted(normal, reverse=True)


def test_each_ranked_model_fits_as_vram_fit_says(ti16: list[Any]) -> None:
    gpu = find_gpu("rtx-4060-ti-16gb")
    for m in ti16[:5]:
        r = fit(
            m.model,
            "rtx-4060-ti-16gb",
            Workload.from_flat(
                engine="llama.cpp", context=8192, new_tokens=0, quant=None if m.quant == "bfloat16" else m.quant
            ),
            solve=False,
            with_speed=False,
        )
        assert r.verdict == m.option.verdict == "fits"
        assert r.per_gpu_bytes == m.option.per_gpu_bytes <= gpu.usable_memory_bytes
        assert m.option.speed is not None and m.option.speed.decode_tokens_per_s > 0


def test_m4_pro_48gb_ranking(m4pro: list[Any]) -> None:
    top = {m.model: m for m in m4pro}
    ids = [m.model for m in m4pro]
    # 36 GiB usable (macOS's GPU limit is 3/4 of 48 GB): Mixtral 8x7B runs at Q4_K_M (the largest at 4 bits or more,
    # Nemotron-H 56B at Q4_K_S, ranks first); 32B models at Q6_K; a 70B only below 4 bits
    assert ids[0] == max((m for m in m4pro if not m.low_bit), key=lambda m: m.params).model
    assert top["mixtral-8x7b"].quant == "q4_k_m"
    assert top["qwen2.5-32b"].quant == "q6_k"
    assert "llama-3.1-70b" not in top or top["llama-3.1-70b"].low_bit
    # the MoE with 3B active parameters decodes faster than the dense 32B on the same memory bandwidth
    assert top["qwen3-30b-a3b"].option.speed.decode_tokens_per_s > 3 * top["qwen3-32b"].option.speed.decode_tokens_per_s
    assert all(m.option.per_gpu_bytes <= find_gpu("m4-pro-48gb").usable_memory_bytes for m in m4pro)


def test_use_filter() -> None:
    code = models_for("rtx-4090", use="code")
    assert code and all(m.use == "code" and "coder" in m.model for m in code)
    emb = models_for("rtx-4060-ti-16gb", use="embedding")
    assert {m.model for m in emb} >= {"bge-m3", "all-minilm-l6-v2"}


def test_cli_json_and_table(run_cli: Run) -> None:
    res = run_cli(
        "models", "--fits", "rtx-4060-ti-16gb", "--engine", "llama.cpp", "--context", "8k", "--json", "--limit", "3"
    )
    assert res.rc == 0, res.err
    d = json.loads(res.out)
    assert d["schema"] == "urn:vram:schema:models:1" and d["context"] == 8192 and len(d["models"]) == 3
    assert d["models"][0]["model"] == models_for("rtx-4060-ti-16gb", engine="llama.cpp", context=8192)[0].model
    res = run_cli("models", "--fits", "m4-pro-48gb", "--limit", "2")
    assert res.rc == 0 and models_for("m4-pro-48gb", engine="llama.cpp", context=8192)[0].model in res.out


def test_cli_options_that_do_not_apply(run_cli: Run) -> None:
    res = run_cli("models", "--context", "8k")
    assert res.rc == 2 and "only with --fits" in res.err
    res = run_cli("models", "--fits", "no-such-gpu")
    assert res.rc == 2 and "unknown GPU" in res.err
