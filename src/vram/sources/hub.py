"""Hugging Face Hub repos outside the catalog: config.json and safetensors headers, never the weights.

The download step is a `HubFetcher` (three calls: list files, get a small file, get a byte range); everything after
it — index parsing, header-length checks, the header parser, the summary — is the code local files use. The real
fetcher goes through `huggingface_hub` (token from HF_TOKEN or `hf auth login`), keeps what it fetched under a cache
folder (VRAM_CACHE_DIR, else $XDG_CACHE_HOME/vram, else ~/.cache/vram), and turns network failures into
OfflineError and gated or missing repos into a SourceError that says what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..dtypes import with_hf_quant_config
from ..errors import NeedsExtra, OfflineError, SourceError
from .safetensors import MAX_INDEX_BYTES, TensorInfo, header_length, parse_header, parse_index, summarize

if TYPE_CHECKING:
    from ..resolved import ResolvedModel

FIRST_READ_BYTES = 100_000  # one request covers the length and most headers; a second fetches the rest
MAX_CONFIG_BYTES = 8 * 1024 * 1024
GGUF_FIRST_READ_BYTES = 1 << 20  # GGUF headers hold the vocabulary: a few MiB for 150k-token models
GGUF_MAX_HEADER_BYTES = 256 << 20


class HubFetcher(Protocol):
    def list_files(self, repo: str) -> list[str]: ...

    def get_file(self, repo: str, name: str, max_bytes: int) -> bytes: ...

    def get_range(self, repo: str, name: str, start: int, length: int) -> bytes: ...

    def get_size(self, repo: str, name: str) -> int: ...


def cache_dir() -> Path:
    base = os.environ.get("VRAM_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "vram"


class HuggingFaceFetcher:
    """The real fetcher: huggingface_hub for listing and small files, HTTP range requests for headers."""

    def __init__(self, token: str | None = None, revision: str = "main", endpoint: str | None = None) -> None:
        self.token = token or os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        self.revision = revision
        self.endpoint = endpoint  # None: huggingface_hub's (HF_ENDPOINT or the Hub)

    def _cache(self, repo: str, key: str) -> Path:
        digest = hashlib.sha256(f"{repo}@{self.revision}:{key}".encode()).hexdigest()[:32]
        return cache_dir() / "hub" / repo.replace("/", "--") / digest

    def _call(self, repo: str, what: str, fn: Any) -> Any:
        try:
            import huggingface_hub.errors as hf_errors
        except ImportError as exc:  # pragma: no cover - only without the extra
            raise NeedsExtra("reading models from the Hugging Face Hub", "sources") from exc
        try:
            return fn()
        except hf_errors.GatedRepoError as exc:
            raise SourceError(
                f"{repo} is a gated repo: accept its licence on its Hub page, then set HF_TOKEN or run `hf auth login`",
                field="model",
            ) from exc
        except hf_errors.RepositoryNotFoundError as exc:
            raise SourceError(
                f"{repo}: no such repo on the Hugging Face Hub (or it is private: set HF_TOKEN)", field="model"
            ) from exc
        except (hf_errors.EntryNotFoundError, hf_errors.RemoteEntryNotFoundError) as exc:
            raise SourceError(f"{repo}: {what} not found in the repo", field="model") from exc
        except (hf_errors.LocalEntryNotFoundError, hf_errors.OfflineModeIsEnabled) as exc:
            raise OfflineError(
                f"{repo}: the Hugging Face Hub is not reachable and {what} is not cached", field="model"
            ) from exc
        except hf_errors.HfHubHTTPError as exc:
            raise SourceError(f"{repo}: the Hub answered {exc.__class__.__name__} for {what}", field="model") from exc
        except OSError as exc:
            raise OfflineError(
                f"{repo}: the Hugging Face Hub is not reachable ({exc.__class__.__name__})", field="model"
            ) from exc
        except Exception as exc:  # httpx / transport errors from the client library
            if "connect" in exc.__class__.__name__.lower() or "timeout" in exc.__class__.__name__.lower():
                raise OfflineError(
                    f"{repo}: the Hugging Face Hub is not reachable ({exc.__class__.__name__})", field="model"
                ) from exc
            raise

    def list_files(self, repo: str) -> list[str]:
        path = self._cache(repo, "files.json")
        if path.is_file():
            cached: list[str] = json.loads(path.read_text(encoding="utf-8"))
            return cached

        def run() -> list[str]:
            from huggingface_hub import HfApi

            return list(HfApi(token=self.token).list_repo_files(repo, revision=self.revision))

        files: list[str] = self._call(repo, "the file list", run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(files), encoding="utf-8")
        return files

    def get_file(self, repo: str, name: str, max_bytes: int) -> bytes:
        def run() -> bytes:
            from huggingface_hub import hf_hub_download

            local = Path(
                hf_hub_download(
                    repo, name, revision=self.revision, token=self.token, cache_dir=str(cache_dir() / "hub-files")
                )
            )
            if local.stat().st_size > max_bytes:
                raise SourceError(f"{repo}/{name}: larger than {max_bytes:,} bytes", field="model")
            return local.read_bytes()

        data: bytes = self._call(repo, name, run)
        return data

    def get_size(self, repo: str, name: str) -> int:
        path = self._cache(repo, f"{name}:size")
        if path.is_file():
            return int(path.read_text(encoding="utf-8"))

        def run() -> int:
            from huggingface_hub import get_hf_file_metadata, hf_hub_url

            meta = get_hf_file_metadata(
                hf_hub_url(repo, name, revision=self.revision, endpoint=self.endpoint),
                token=self.token,
                endpoint=self.endpoint,
            )
            if meta.size is None:
                raise SourceError(f"{repo}/{name}: the Hub gave no file size", field="model")
            return int(meta.size)

        size: int = self._call(repo, name, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(size), encoding="utf-8")
        return size

    def get_range(self, repo: str, name: str, start: int, length: int) -> bytes:
        path = self._cache(repo, f"{name}:{start}:{length}")
        if path.is_file():
            return path.read_bytes()

        def run() -> bytes:
            import huggingface_hub.utils as hf_utils
            from huggingface_hub import get_session, hf_hub_url

            headers: dict[str, str] = hf_utils.build_hf_headers(token=self.token)  # type: ignore[attr-defined]
            headers["Range"] = f"bytes={start}-{start + length - 1}"
            url = hf_hub_url(repo, name, revision=self.revision, endpoint=self.endpoint)
            # streamed, and cut at `length`: a server that ignores Range must not make us download the tensors
            with get_session().stream("GET", url, headers=headers, follow_redirects=True) as resp:
                if resp.status_code in (401, 403):
                    from huggingface_hub.errors import GatedRepoError

                    raise GatedRepoError(f"{resp.status_code}", response=resp)
                if resp.status_code not in (200, 206):
                    raise SourceError(f"{repo}/{name}: the Hub answered HTTP {resp.status_code}", field="model")
                if resp.status_code == 200 and start:
                    raise SourceError(f"{repo}/{name}: the server ignored the byte range", field="model")
                chunks: list[bytes] = []
                got = 0
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    got += len(chunk)
                    if got >= length:
                        break
            return b"".join(chunks)[:length]

        data: bytes = self._call(repo, name, run)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data


def _first_gguf_read() -> int:
    return GGUF_FIRST_READ_BYTES


def remote_gguf(fetcher: HubFetcher, repo: str, name: str, *, require_arch: bool = True) -> Any:
    """A remote GGUF file's metadata and tensor infos: its first bytes, doubled until the header parses."""
    import tempfile

    from .gguf import read_gguf

    src = f"{repo}/{name}"
    size = fetcher.get_size(repo, name)
    want = min(_first_gguf_read(), size)
    data = b""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "header.gguf"
        while True:
            if want > len(data):
                data += fetcher.get_range(repo, name, len(data), want - len(data))
            path.write_bytes(data)
            try:
                return read_gguf(path, remote_size=size, source=src, require_arch=require_arch)
            except SourceError as exc:
                if "past the end" not in str(exc) or len(data) >= size:
                    raise
                if want >= GGUF_MAX_HEADER_BYTES:
                    raise SourceError(
                        f"{src}: GGUF header larger than {GGUF_MAX_HEADER_BYTES:,} bytes", field="model"
                    ) from exc
                want = min(2 * want, size, GGUF_MAX_HEADER_BYTES)


def resolve_hub_gguf(fetcher: HubFetcher, repo: str, files: list[str], pick: str | None) -> ResolvedModel:
    """A repo of GGUF files: the one named by `pick` (a quant name such as Q4_K_M, or a file name), or the only one;
    split models are read from all their parts."""
    import re

    from ..records import replace
    from ..resolved import ResolvedModel
    from .gguf import GgufFile, gguf_spec, gguf_weights

    ggufs = sorted(x for x in files if x.endswith(".gguf") and "mmproj" not in x.lower())
    if pick:
        key = pick.lower()
        chosen = [x for x in ggufs if key in x.lower().rsplit("/", 1)[-1]]
    else:
        chosen = ggufs
    firsts = sorted({re.sub(r"-\d{5}-of-(\d{5})\.gguf$", r"-00001-of-\1.gguf", x) for x in chosen})
    if len(firsts) != 1:
        names = ", ".join(x.rsplit("/", 1)[-1] for x in ggufs[:8])
        raise SourceError(
            f"{repo}: {'no' if not firsts else 'several'} GGUF files match; name one as {repo}:QUANT (files: {names})",
            field="model",
        )
    first = firsts[0]
    m = re.search(r"-(\d{5})-of-(\d{5})\.gguf$", first)
    parts = [first] if not m else [first.replace("-00001-of-", f"-{i:05d}-of-") for i in range(1, int(m[2]) + 1)]
    g0 = remote_gguf(fetcher, repo, parts[0])
    tensors = list(g0.tensors)
    for part in parts[1:]:
        tensors.extend(remote_gguf(fetcher, repo, part, require_arch=False).tensors)
    g = GgufFile(g0.path, g0.architecture, g0.metadata, tuple(tensors), g0.file_size)
    w = gguf_weights(g)
    spec = gguf_spec(g, w, f"{repo}:{first.rsplit('/', 1)[-1].removesuffix('.gguf')}")
    spec = replace(spec, notes=(*spec.notes, f"weights: {w.summary()} (from the GGUF header on the Hub)"))
    return ResolvedModel(spec, None, f"hub-gguf:{repo}/{first}", weights_override_bytes=w.bytes, weights_info=w)


def remote_header_tensors(fetcher: HubFetcher, repo: str, name: str) -> list[TensorInfo]:
    """One remote file's tensors: a first range read of FIRST_READ_BYTES, a second only for a longer header."""
    src = f"{repo}/{name}"
    first = fetcher.get_range(repo, name, 0, FIRST_READ_BYTES)
    n = header_length(first[:8], None, src)
    if 8 + n <= len(first):
        raw = first[8 : 8 + n]
    else:
        raw = first[8:] + fetcher.get_range(repo, name, len(first), 8 + n - len(first))
    if len(raw) != n:
        raise SourceError(f"{src}: truncated safetensors header ({len(raw):,} of {n:,} bytes)")
    return list(parse_header(raw, data_size=None, source=src).tensors)


def resolve_hub(repo: str, fetcher: HubFetcher | None = None) -> ResolvedModel:
    """`org/name` outside the catalog: config.json + every safetensors shard's header; or, for a repo of GGUF
    files, `org/name:QUANT` (the GGUF header of that file)."""
    from . import model_from_headers

    f = fetcher or HuggingFaceFetcher()
    pick: str | None = None
    if ":" in repo:
        repo, pick = repo.split(":", 1)
    files = f.list_files(repo)
    if pick is not None or ("config.json" not in files and any(x.endswith(".gguf") for x in files)):
        return resolve_hub_gguf(f, repo, files, pick)
    if "config.json" not in files:
        if "model_index.json" in files:
            raise SourceError(
                f"{repo} is a diffusers pipeline; only the catalog's pipelines are modelled "
                "(e.g. `vram models flux`, `vram models sd3.5`, `vram models sdxl`)",
                field="model",
            )
        raise SourceError(f"{repo}: no config.json in the repo", field="model")
    try:
        config = json.loads(f.get_file(repo, "config.json", MAX_CONFIG_BYTES).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SourceError(f"{repo}/config.json: not valid JSON", field="model") from exc
    if not isinstance(config, dict):
        raise SourceError(f"{repo}/config.json: not a JSON object", field="model")
    if "model.safetensors.index.json" in files:
        shards = parse_index(
            f.get_file(repo, "model.safetensors.index.json", MAX_INDEX_BYTES), f"{repo}/model.safetensors.index.json"
        )
    else:
        shards = sorted(x for x in files if x.endswith(".safetensors") and "/" not in x)
    if not shards:
        raise SourceError(f"{repo}: no safetensors weights in the repo (only those are read)", field="model")
    tensors: list[TensorInfo] = []
    for name in shards:
        tensors.extend(remote_header_tensors(f, repo, name))
    if "hf_quant_config.json" in files and "quantization_config" not in config:  # a ModelOpt export's quantization
        try:
            hq = json.loads(f.get_file(repo, "hf_quant_config.json", MAX_CONFIG_BYTES).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise SourceError(f"{repo}/hf_quant_config.json: not valid JSON", field="model") from exc
        config = with_hf_quant_config(config, hq)
    qc = config.get("quantization_config")
    info = summarize(
        tensors, source=f"hub:{repo}", files=tuple(shards), quant_config=qc if isinstance(qc, dict) else None
    )
    return model_from_headers(config, info, repo, f"hub:{repo}")


__all__ = ["FIRST_READ_BYTES", "HubFetcher", "HuggingFaceFetcher", "cache_dir", "remote_header_tensors", "resolve_hub"]
