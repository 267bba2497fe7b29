"""Scan n_ubatch (64 … 2048) with flash attention on and off for one small llama GGUF (f16 cache, n_ctx 4096):
llama.cpp's compute buffer beside vram's. Same setup as compare.py.

    PYTHONPATH=src /tmp/llenv/bin/python measurements/llama_cpp/ubatch_scan.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare

from vram.inference import estimate
from vram.request import Workload
from vram.sources.synth import TinyModel, write_gguf

MIB = 1024**2


def main() -> None:
    path = Path(tempfile.mkdtemp()) / "scan.gguf"
    write_gguf(path, TinyModel())
    print("| flash attention | n_ubatch | llama.cpp compute MiB | vram compute MiB |")
    print("|---|---|---|---|")
    for fa in (True, False):
        for ub in (64, 128, 256, 384, 512, 768, 1024, 2048):
            c = dict(n_ctx=4096, n_ubatch=ub, fa=fa, k="f16", v="f16")
            got = compare.parse(compare.run_llama(path, c))["compute"]
            est = estimate(
                str(path),
                Workload.from_flat(
                    engine="llama.cpp", context=4096, n_ubatch=ub, n_batch=max(2048, ub), flash_attn=fa, n_gpu_layers=0
                ),
            )
            ours = est.llama_cpp.compute_bytes / MIB
            print(f"| {'on' if fa else 'off'} | {ub} | {got:.2f} | {ours:.2f} |", flush=True)


if __name__ == "__main__":
    main()
