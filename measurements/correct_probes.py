"""Correct the probe files' `generate_clean_peak_bytes` for the cache the probe kept alive (run once; idempotent).

`probe.py` (before its fix) kept `cache = out.past_key_values` referenced through its "clean" `generate()`, so that
call ran with the standalone forward's cache still allocated. The cache is a constant allocation over the call, so it
adds exactly its size to `max_memory_allocated()`: the plain figure is the measured one less `kv_cache_bytes_alloc`
(the bytes the standalone forward left allocated, less its logits, which the probe had already released). This is the
derivation ../shared/groundtruth/README.md applies to the calibration set. Reserved bytes are corrected the same way,
which is an approximation (the allocator's segments were not re-measured).

Each corrected row keeps what was measured in `generate_clean_peak_bytes_as_measured` (and `..._reserved_...`),
records `retained_cache_bytes`, and is not corrected a second time.

One row is excluded from the peak comparisons (`excluded` says why; its numbers stay as measured), because its
generate() did something a plain generate() on text does not: the first probe's Gemma-3-1B sdpa b4 L4096. Its random
prompt (`torch.randint(0, vocab)`, not recorded) very likely held token 0, Gemma 3's pad_token_id (a 6 % chance for
16,384 tokens of a 262,144 vocabulary): transformers' `_prepare_attention_mask_for_generation` (generation/utils.py)
then infers an attention mask with a zero, and masking_utils can no longer skip the full-attention causal mask, so
generate() builds it beside the sliding-window one (batch × context² bools, 64 MiB). The evidence: the same model and
shape in h200-probe2.jsonl (same torch / transformers; its config differs only in fields generate() ignores or that
equal Gemma3TextConfig's defaults: cache_implementation "hybrid" is unset by generate()) has a standalone forward
increment identical to the byte (peak − allocated before: 1,291,889,664 in both), while its generate() increment
(clean peak − weights − cuBLAS workspace − prompt) is 68,747,264 bytes (65.6 MiB) lower; on CPU, transformers 5.17's
generate() of Gemma-3-1B's layer shapes (6 of its 26 layers) at b4 L4096 peaks exactly 67,108,864 bytes higher when one
prompt token equals pad_token_id — one more live tensor at the peak, the 4 × 1 × 4096 × 4096 bool mask (the other
1.6 MiB are within the caching allocator's whole-block counting). The amount cannot be derived from recorded fields
(the prompt was not kept), so the row is excluded rather than corrected. probe.py now replaces pad tokens in its
random prompts.

    python measurements/correct_probes.py
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def correct(row: dict[str, object]) -> dict[str, object]:
    if row.get("kind") != "infer" or "error" in row or "retained_cache_bytes" in row:
        return row
    retained = row["kv_cache_bytes_alloc"]
    assert isinstance(retained, int)
    out = dict(row)
    for key in ("generate_clean_peak_bytes", "generate_clean_peak_reserved_bytes"):
        measured = row[key]
        assert isinstance(measured, int)
        out[key.replace("_bytes", "_bytes_as_measured")] = measured
        out[key] = measured - retained
    out["retained_cache_bytes"] = retained
    return out


# (file, model, attn, batch, context) -> why its generate() peak is not a plain generate()'s (module docstring)
EXCLUDED = {
    ("h200-probe.jsonl", "Gemma-3-1B", "sdpa", 4, 4096): (
        "generate() inferred padding: the random prompt very likely held pad_token_id 0, so the full-attention "
        "causal mask (batch x context^2 bools, 64 MiB) was built too; the same shape in h200-probe2.jsonl has the "
        "identical standalone-forward increment and a generate() increment 65.6 MiB lower (correct_probes.py)"
    ),
}


def exclude(path_name: str, row: dict[str, object]) -> dict[str, object]:
    key = (path_name, row.get("model"), row.get("attn"), row.get("batch"), row.get("context"))
    why = EXCLUDED.get(key)  # type: ignore[call-overload]
    if row.get("kind") != "infer" or why is None or "excluded" in row:
        return row
    return {**row, "excluded": why}


def main() -> None:
    for path in sorted(HERE.glob("h200-probe*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps(exclude(path.name, correct(r))) + "\n" for r in rows))


if __name__ == "__main__":
    main()
