"""Correct the probe files' `generate_clean_peak_bytes` for the cache the probe kept alive (run once; idempotent).

`probe.py` (before its fix) kept `cache = out.past_key_values` referenced through its "clean" `generate()`, so that
call ran with the standalone forward's cache still allocated. The cache is a constant allocation over the call, so it
adds exactly its size to `max_memory_allocated()`: the plain figure is the measured one less `kv_cache_bytes_alloc`
(the bytes the standalone forward left allocated, less its logits, which the probe had already released). This is the
derivation ../shared/groundtruth/README.md applies to the calibration set. Reserved bytes are corrected the same way,
which is an approximation (the allocator's segments were not re-measured).

Each corrected row keeps what was measured in `generate_clean_peak_bytes_as_measured` (and `..._reserved_...`),
records `retained_cache_bytes`, and is not corrected a second time.

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


def main() -> None:
    for path in sorted(HERE.glob("h200-probe*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps(correct(r)) + "\n" for r in rows))


if __name__ == "__main__":
    main()
