"""Dev-only (run by hand in the scratch torch + transformers environment of make_arch_fixtures.py): catalog entries from verbatim config.json copies in ai-dynamo/aiconfigurator @ 095f58a51, counted with
transformers on the meta device; vram must agree to the unit or the entry is skipped."""

import json
import sys
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_arch_fixtures as maf

from vram.model import model_from_config

COMMIT = "095f58a51c4ca8e61b66ec108d86f223f8d559ce"
SRC = "https://github.com/ai-dynamo/aiconfigurator/blob/{c}/aic-core/src/aiconfigurator_core/model_configs/{f}"
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "vram" / "catalog" / "data" / "models"
# the config.json copies, extracted with `git show COMMIT:aic-core/src/aiconfigurator_core/model_configs/<file>`
CONFIGS = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/aic")
ONLY = set(sys.argv[2:])  # entry ids to (re)write; all when none are named
# architectures whose remote-code class name differs from the transformers class that builds the same network
ARCH_CLASS = {"KimiK25ForConditionalGeneration": "Kimi_K25ForConditionalGeneration"}
# multimodal model_types whose vision towers vram counts: their entries are the whole checkpoint
WHOLE = ("qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe", "kimi_k25", "gemma4")
TEXT_CLASS = {
    "qwen3_5_text": "Qwen3_5ForCausalLM",
    "qwen3_5_moe_text": "Qwen3_5MoeForCausalLM",
    "llama4_text": "Llama4ForCausalLM",
    "gemma4_text": "Gemma4ForCausalLM",
    "kimi_k2": "DeepseekV3ForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
}
# (file stem, id, name, family, license, hf_repo, aliases, published size text)
E = [
    (
        "Qwen--Qwen3.5-27B",
        "qwen3.5-27b",
        "Qwen3.5 27B",
        "qwen3.5",
        "apache-2.0",
        "Qwen/Qwen3.5-27B",
        ["qwen3.5:27b"],
        "27B",
    ),
    (
        "Qwen--Qwen3.5-35B-A3B",
        "qwen3.5-35b-a3b",
        "Qwen3.5 35B-A3B",
        "qwen3.5",
        "apache-2.0",
        "Qwen/Qwen3.5-35B-A3B",
        ["qwen3.5:35b-a3b"],
        "35B",
    ),
    (
        "Qwen--Qwen3.5-122B-A10B",
        "qwen3.5-122b-a10b",
        "Qwen3.5 122B-A10B",
        "qwen3.5",
        "apache-2.0",
        "Qwen/Qwen3.5-122B-A10B",
        ["qwen3.5:122b-a10b"],
        "122B",
    ),
    (
        "Qwen--Qwen3.5-397B-A17B",
        "qwen3.5-397b-a17b",
        "Qwen3.5 397B-A17B",
        "qwen3.5",
        "apache-2.0",
        "Qwen/Qwen3.5-397B-A17B",
        ["qwen3.5:397b-a17b"],
        "397B",
    ),
    (
        "nvidia--Qwen3.6-27B-NVFP4",
        "qwen3.6-27b",
        "Qwen3.6 27B",
        "qwen3.5",
        "apache-2.0",
        "Qwen/Qwen3.6-27B",
        ["qwen3.6:27b"],
        "27B",
    ),
    (
        "nvidia--Qwen3.6-35B-A3B-NVFP4",
        "qwen3.6-35b-a3b",
        "Qwen3.6 35B-A3B",
        "qwen3.5",
        "apache-2.0",
        "Qwen/Qwen3.6-35B-A3B",
        ["qwen3.6:35b-a3b"],
        "35B",
    ),
    (
        "Qwen--Qwen3-Coder-480B-A35B-Instruct",
        "qwen3-coder-480b-a35b",
        "Qwen3-Coder 480B-A35B",
        "qwen3",
        "apache-2.0",
        "Qwen/Qwen3-Coder-480B-A35B-Instruct",
        ["qwen3-coder:480b"],
        "480B",
    ),
    (
        "deepseek-ai--DeepSeek-V3.2",
        "deepseek-v3.2",
        "DeepSeek V3.2",
        "deepseek-v3",
        "mit",
        "deepseek-ai/DeepSeek-V3.2",
        ["deepseek-ai/DeepSeek-V3.2-Exp", "deepseek-v3.2-exp"],
        "685B",
    ),
    (
        "moonshotai--Kimi-K2-Instruct",
        "kimi-k2-instruct",
        "Kimi K2 Instruct",
        "kimi-k2",
        "modified-mit",
        "moonshotai/Kimi-K2-Instruct",
        ["moonshotai/Kimi-K2-Base", "kimi-k2"],
        "1T",
    ),
    (
        "moonshotai--Kimi-K2.5",
        "kimi-k2.5",
        "Kimi K2.5",
        "kimi-k2",
        "modified-mit",
        "moonshotai/Kimi-K2.5",
        ["kimi-k2.5:text"],
        "1T",
    ),
    ("nvidia--Kimi-K2.6-NVFP4", "kimi-k2.6", "Kimi K2.6", "kimi-k2", "modified-mit", "moonshotai/Kimi-K2.6", [], "1T"),
    ("zai-org--GLM-5", "glm-5", "GLM-5", "glm", "mit", "zai-org/GLM-5", ["glm5"], "744B"),
    ("zai-org--GLM-5-FP8", "glm-5-fp8", "GLM-5 FP8", "glm", "mit", "zai-org/GLM-5-FP8", [], "744B"),
    ("zai-org--GLM-5.1", "glm-5.1", "GLM-5.1", "glm", "mit", "zai-org/GLM-5.1", ["glm5.1"], "744B"),
    ("zai-org--GLM-5.1-FP8", "glm-5.1-fp8", "GLM-5.1 FP8", "glm", "mit", "zai-org/GLM-5.1-FP8", [], "744B"),
    ("zai-org--GLM-5.2", "glm-5.2", "GLM-5.2", "glm", "mit", "zai-org/GLM-5.2", ["glm5.2"], None),
    ("zai-org--GLM-5.2-FP8", "glm-5.2-fp8", "GLM-5.2 FP8", "glm", "mit", "zai-org/GLM-5.2-FP8", [], None),
    (
        "MiniMaxAI--MiniMax-M2.5",
        "minimax-m2.5",
        "MiniMax-M2.5",
        "minimax-m2",
        "modified-mit",
        "MiniMaxAI/MiniMax-M2.5",
        ["minimax-m2"],
        "230B",
    ),
    (
        "MiniMaxAI--MiniMax-M2.7",
        "minimax-m2.7",
        "MiniMax-M2.7",
        "minimax-m2",
        "modified-mit",
        "MiniMaxAI/MiniMax-M2.7",
        [],
        "230B",
    ),
    (
        "google--gemma-4-26B-A4B",
        "gemma-4-26b-a4b",
        "Gemma 4 26B-A4B",
        "gemma-4",
        "gemma",
        "google/gemma-4-26B-A4B",
        ["gemma4:26b"],
        None,
    ),
    (
        "nvidia--Gemma-4-31B-IT-NVFP4",
        "gemma-4-31b",
        "Gemma 4 31B",
        "gemma-4",
        "gemma",
        "google/gemma-4-31B-it",
        ["gemma4:31b"],
        None,
    ),
    (
        "meta-llama--Llama-4-Scout-17B-16E-Instruct",
        "llama-4-scout",
        "Llama 4 Scout 109B (17B active, 16 experts)",
        "llama-4",
        "llama4",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        ["meta-llama/Llama-4-Scout-17B-16E", "llama4:scout"],
        None,
    ),
    (
        "meta-llama--Llama-4-Maverick-17B-128E-Instruct",
        "llama-4-maverick",
        "Llama 4 Maverick 400B (17B active, 128 experts)",
        "llama-4",
        "llama4",
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
        ["meta-llama/Llama-4-Maverick-17B-128E", "llama4:maverick"],
        None,
    ),
    (
        "nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        "nemotron-3-nano-30b-a3b",
        "Nemotron 3 Nano 30B-A3B",
        "nemotron-h",
        "nvidia-open-model",
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        ["nemotron-3-nano"],
        "30B",
    ),
    (
        "nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-FP8",
        "nemotron-3-super-120b-a12b",
        "Nemotron 3 Super 120B-A12B",
        "nemotron-h",
        "nvidia-open-model",
        "nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8",
        ["nemotron-3-super"],
        "120B",
    ),
    (
        "nvidia--NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16",
        "nemotron-3-ultra-550b-a55b",
        "Nemotron 3 Ultra 550B-A55B",
        "nemotron-h",
        "nvidia-open-model",
        "nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B-BF16",
        ["nemotron-3-ultra"],
        "550B",
    ),
    (
        "nvidia--Nemotron-H-56B-Base-8K",
        "nemotron-h-56b",
        "Nemotron-H 56B",
        "nemotron-h",
        "nvidia-open-model",
        "nvidia/Nemotron-H-56B-Base-8K",
        [],
        "56B",
    ),
    (
        "nvidia--NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4",
        "nemotron-3.5-lightning-30b-a3b",
        "Nemotron 3.5 Lightning 30B-A3B",
        "nemotron-h",
        "nvidia-open-model",
        "nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4",
        [],
        "30B",
    ),
    (
        "nvidia--Kimi-K2.7-Code-NVFP4",
        "kimi-k2.7-code",
        "Kimi K2.7 Code",
        "kimi-k2",
        "modified-mit",
        "moonshotai/Kimi-K2.7-Code",
        [],
        "1T",
    ),
]
NV = [
    ("nvidia--DeepSeek-V3.1-NVFP4", "deepseek-v3.1-nvfp4", "DeepSeek V3.1 NVFP4", "deepseek-v3", "mit", "685B"),
    ("nvidia--DeepSeek-V3.2-NVFP4", "deepseek-v3.2-nvfp4", "DeepSeek V3.2 NVFP4", "deepseek-v3", "mit", "685B"),
    ("nvidia--GLM-5-NVFP4", "glm-5-nvfp4", "GLM-5 NVFP4", "glm", "mit", "744B"),
    ("nvidia--GLM-5.1-NVFP4", "glm-5.1-nvfp4", "GLM-5.1 NVFP4", "glm", "mit", "744B"),
    ("nvidia--Kimi-K2.5-NVFP4", "kimi-k2.5-nvfp4", "Kimi K2.5 NVFP4", "kimi-k2", "modified-mit", None),
    ("nvidia--Kimi-K2.6-NVFP4", "kimi-k2.6-nvfp4", "Kimi K2.6 NVFP4", "kimi-k2", "modified-mit", None),
    ("nvidia--MiniMax-M2.5-NVFP4", "minimax-m2.5-nvfp4", "MiniMax-M2.5 NVFP4", "minimax-m2", "modified-mit", "230B"),
    ("nvidia--MiniMax-M2.7-NVFP4", "minimax-m2.7-nvfp4", "MiniMax-M2.7 NVFP4", "minimax-m2", "modified-mit", "230B"),
    ("nvidia--Gemma-4-26B-A4B-NVFP4", "gemma-4-26b-a4b-nvfp4", "Gemma 4 26B-A4B NVFP4", "gemma-4", "gemma", None),
    ("nvidia--Gemma-4-31B-IT-NVFP4", "gemma-4-31b-it-nvfp4", "Gemma 4 31B IT NVFP4", "gemma-4", "gemma", None),
    (
        "nvidia--NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4",
        "nemotron-3-nano-30b-a3b-nvfp4",
        "Nemotron 3 Nano 30B-A3B NVFP4",
        "nemotron-h",
        "nvidia-open-model",
        "30B",
    ),
    (
        "nvidia--NVIDIA-Nemotron-3-Super-120B-A12B-NVFP4",
        "nemotron-3-super-120b-a12b-nvfp4",
        "Nemotron 3 Super 120B-A12B NVFP4",
        "nemotron-h",
        "nvidia-open-model",
        "120B",
    ),
    (
        "nvidia--NVIDIA-Nemotron-3-Ultra-550B-A55B-FP8",
        "nemotron-3-ultra-550b-a55b-fp8",
        "Nemotron 3 Ultra 550B-A55B FP8",
        "nemotron-h",
        "nvidia-open-model",
        "550B",
    ),
    (
        "nvidia--NVIDIA-Nemotron-3-Ultra-550B-A55B-NVFP4",
        "nemotron-3-ultra-550b-a55b-nvfp4",
        "Nemotron 3 Ultra 550B-A55B NVFP4",
        "nemotron-h",
        "nvidia-open-model",
        "550B",
    ),
    (
        "nvidia--Qwen3.5-122B-A10B-NVFP4",
        "qwen3.5-122b-a10b-nvfp4",
        "Qwen3.5 122B-A10B NVFP4",
        "qwen3.5",
        "apache-2.0",
        "122B",
    ),
    (
        "nvidia--Qwen3.5-397B-A17B-NVFP4",
        "qwen3.5-397b-a17b-nvfp4",
        "Qwen3.5 397B-A17B NVFP4",
        "qwen3.5",
        "apache-2.0",
        "397B",
    ),
    ("nvidia--Qwen3.6-27B-NVFP4", "qwen3.6-27b-nvfp4", "Qwen3.6 27B NVFP4", "qwen3.5", "apache-2.0", "27B"),
    ("nvidia--Qwen3.6-35B-A3B-NVFP4", "qwen3.6-35b-a3b-nvfp4", "Qwen3.6 35B-A3B NVFP4", "qwen3.5", "apache-2.0", "35B"),
    ("nvidia--Qwen3-235B-A22B-NVFP4", "qwen3-235b-a22b-nvfp4", "Qwen3 235B-A22B NVFP4", "qwen3", "apache-2.0", "235B"),
    ("Qwen--Qwen3-235B-A22B-FP8", "qwen3-235b-a22b-fp8", "Qwen3 235B-A22B FP8", "qwen3", "apache-2.0", "235B"),
    ("Qwen--Qwen3-30B-A3B-FP8", "qwen3-30b-a3b-fp8", "Qwen3 30B-A3B FP8", "qwen3", "apache-2.0", "30B"),
    ("Qwen--Qwen3-32B-FP8", "qwen3-32b-fp8", "Qwen3 32B FP8", "qwen3", "apache-2.0", "32B"),
]
E += [(stem, mid, name, fam, lic, stem.replace("--", "/"), [], pub) for stem, mid, name, fam, lic, pub in NV]
VL = [("Qwen--Qwen3-VL-2B-Instruct", "qwen3-vl-2b", "Qwen3-VL 2B", "2B"),
      ("Qwen--Qwen3-VL-4B-Instruct", "qwen3-vl-4b", "Qwen3-VL 4B", "4B"),
      ("Qwen--Qwen3-VL-8B-Instruct", "qwen3-vl-8b", "Qwen3-VL 8B", "8B"),
      ("Qwen--Qwen3-VL-32B-Instruct", "qwen3-vl-32b", "Qwen3-VL 32B", "32B"),
      ("Qwen--Qwen3-VL-32B-Thinking", "qwen3-vl-32b-thinking", "Qwen3-VL 32B Thinking", "32B"),
      ("Qwen--Qwen3-VL-30B-A3B-Instruct", "qwen3-vl-30b-a3b", "Qwen3-VL 30B-A3B", "30B"),
      ("Qwen--Qwen3-VL-235B-A22B-Instruct", "qwen3-vl-235b-a22b", "Qwen3-VL 235B-A22B", "235B")]
E += [(stem, mid, name, "qwen3-vl", "apache-2.0", stem.replace("--", "/"), [], pub) for stem, mid, name, pub in VL]
made = []
for stem, mid, name, fam, lic, repo, aliases, pub in E:
    if name is None or (ONLY and mid not in ONLY):
        continue
    f = f"{stem}_config.json"
    raw = json.loads(Path(CONFIGS, f).read_text())
    cfg = dict(raw)
    note = ""
    borrowed = stem.replace("--", "/") != repo
    if borrowed:  # the config of a quantized copy describes the architecture; its quantization is not the repo's
        cfg.pop("quantization_config", None)
        raw = {k: v for k, v in raw.items() if k != "quantization_config"}
    whole = raw.get("model_type") in WHOLE and "vision_config" in raw
    if whole:  # vram counts these vision towers too: the whole checkpoint
        cfg.pop("auto_map", None)  # the remote code's network is the transformers class's (ARCH_CLASS)
        note = (f"Whole multimodal checkpoint ({raw['architectures'][0]}): language model and "
                f"{model_from_config(cfg).extra_description or 'vision tower'}.")
    elif isinstance(raw.get("text_config"), dict):
        tc = dict(raw["text_config"])
        for k in ("quantization_config", "tie_word_embeddings", "torch_dtype", "dtype"):
            if k in raw and k not in tc:
                tc[k] = raw[k]
        mt = tc.get("model_type")
        if mt not in TEXT_CLASS:
            print("skip (text model_type)", mid, mt)
            continue
        tc["architectures"] = [TEXT_CLASS[mt]]
        if mt == "kimi_k2":
            tc["model_type"] = "kimi_k2"
        cfg = tc
        note = (
            f"Language model of the multimodal checkpoint ({raw['architectures'][0]}): the config is its "
            "text_config (with the checkpoint's quantization_config); the vision tower and projector are not counted."
        )
    try:
        spec = model_from_config(cfg, name=mid)
    except Exception as e:
        print("skip (vram)", mid, type(e).__name__, e)
        continue
    try:
        c = maf.build_config(cfg)
        arch = cfg["architectures"][0]
        cls = getattr(transformers, ARCH_CLASS.get(arch, arch))
        with torch.device("meta"):
            m = cls(c)
        n = sum(p.numel() for p in m.parameters())
    except Exception as e:
        print("skip (transformers)", mid, type(e).__name__, str(e)[:200])
        continue
    if n != spec.params:
        print("MISMATCH", mid, n, spec.params, spec.params - n)
        continue
    ctx = cfg.get("max_position_embeddings") or (cfg.get("text_config") or {}).get("max_position_embeddings") or 131072
    entry = {
        "id": mid,
        "name": name,
        "family": fam,
        "license": lic,
        "hf_repo": repo,
        "aliases": aliases,
        "context_length": int(ctx),
        "params": n,
        **({"text_params": spec.text_params} if spec.extra_params else {}),
        "params_source": f"transformers {transformers.__version__} meta-device instantiation",
        **({"published_params_text": pub} if pub else {}),
        "params_note": (note + " " if note else "")
        + (
            f"The checkpoint also stores {spec.mtp_params:,} multi-token-prediction parameters (not built by transformers)."
            if spec.mtp_params
            else ""
        ),
        "config_source": SRC.format(c=COMMIT, f=f)
        + (
            f" (a verbatim copy of the config.json of {repo})"
            if not borrowed
            else f" (config.json of {stem.replace('--', '/')}, a quantized copy of {repo} with the same architecture; its quantization_config is left out)"
        ),
        "config": cfg,
    }
    entry["params_note"] = entry["params_note"].strip() or "Count of the model transformers builds from this config."
    # a ModelOpt export states its quantization in hf_quant_config.json, not in config.json: kept verbatim beside it
    # (vram.dtypes.with_hf_quant_config); MIXED_PRECISION (per-layer formats) is not modelled and left out
    hq_file = Path(CONFIGS, f"{stem}_hf_quant_config.json")
    if not borrowed and "quantization_config" not in cfg and hq_file.is_file():
        hq = json.loads(hq_file.read_text())
        if hq.get("quantization", {}).get("quant_algo") in ("NVFP4", "FP8"):
            config = entry.pop("config")
            entry["hf_quant_config_source"] = (
                SRC.format(c=COMMIT, f=hq_file.name) + f" (a verbatim copy of the hf_quant_config.json of {repo}: "
                "the ModelOpt export states its quantization there, not in config.json)"
            )
            entry["config"] = config
            entry["hf_quant_config"] = hq
    (OUT / f"{mid}.json").write_text(json.dumps(entry, indent=2) + "\n")
    made.append(mid)
    print("ok", mid, f"{n:,}", spec.model_type, spec.stored_scheme.name if spec.stored_scheme else "-")
print(len(made))
