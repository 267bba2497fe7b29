"""Hub repos outside the catalog, through an injected fetcher serving real safetensors files from a temp folder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest

from test_safetensors import CONFIG, llama_tensors, write_folder
from vram.errors import OfflineError, SourceError
from vram.inference import estimate
from vram.request import Workload
from vram.resolver import resolve_model
from vram.sources.hub import FIRST_READ_BYTES, HuggingFaceFetcher, resolve_hub
from vram.sources.safetensors import read_local_weights


class FolderFetcher:
    """Serves a local folder as if it were a Hub repo, counting the bytes asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ranges: list[tuple[str, int, int]] = []

    def list_files(self, repo: str) -> list[str]:
        return sorted(p.name for p in self.root.iterdir())

    def get_file(self, repo: str, name: str, max_bytes: int) -> bytes:
        return (self.root / name).read_bytes()[:max_bytes]

    def get_range(self, repo: str, name: str, start: int, length: int) -> bytes:
        self.ranges.append((name, start, length))
        with (self.root / name).open("rb") as f:
            f.seek(start)
            return f.read(length)


def test_remote_sharded_repo_same_as_local(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "repo", llama_tensors(), shards=2)
    fetcher = FolderFetcher(folder)
    rm = resolve_hub("someone/tiny-llama", fetcher)
    local = read_local_weights(folder)
    assert rm.spec.params == local.params
    assert rm.weights_override_bytes == local.bytes
    assert rm.source == "hub:someone/tiny-llama"
    # one range request per shard: headers fit in the first read; never the tensors
    assert [(s, n) for _, s, n in fetcher.ranges] == [(0, FIRST_READ_BYTES)] * 2
    est = estimate(rm, Workload(context=64))
    assert est.weights_bytes == local.bytes


def test_a_modelopt_repo_states_its_quantization_beside_config_json(tmp_path: Path) -> None:
    """A Hub repo of a ModelOpt export (config.json without quantization_config, hf_quant_config.json beside it)
    is read with that quantization, as the folder is; a broken one is a clear error."""
    folder = write_folder(tmp_path / "repo", llama_tensors())
    (folder / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "NVFP4"}}))
    rm = resolve_hub("someone/tiny-llama-nvfp4", FolderFetcher(folder))
    assert rm.spec.stored_scheme is not None and rm.spec.stored_scheme.name == "nvfp4"
    assert resolve_model(str(folder)).spec.stored_scheme == rm.spec.stored_scheme
    (folder / "hf_quant_config.json").write_text("[not json")
    with pytest.raises(SourceError, match=r"hf_quant_config\.json: not valid JSON"):
        resolve_hub("someone/tiny-llama-broken", FolderFetcher(folder))


def test_large_header_needs_a_second_read(tmp_path: Path) -> None:
    # many small tensors make a header longer than the first read
    tensors = {f"model.extra.{i}.weight": np.zeros(1, np.float16) for i in range(2000)} | llama_tensors()
    folder = write_folder(tmp_path / "big", tensors)
    fetcher = FolderFetcher(folder)
    rm = resolve_hub("someone/big", fetcher)
    assert len(fetcher.ranges) == 2 and fetcher.ranges[1][1] == FIRST_READ_BYTES
    assert rm.weights_override_bytes == sum(a.nbytes for a in tensors.values())


def test_bad_remote_headers_and_repos(tmp_path: Path) -> None:
    repo = tmp_path / "bad"
    repo.mkdir()
    (repo / "config.json").write_text(json.dumps(CONFIG))
    (repo / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    with pytest.raises(SourceError, match="exceeds"):
        resolve_hub("x/bad", FolderFetcher(repo))
    (repo / "model.safetensors").unlink()
    with pytest.raises(SourceError, match="no safetensors"):
        resolve_hub("x/bad", FolderFetcher(repo))
    (repo / "config.json").unlink()
    (repo / "model_index.json").write_text("{}")
    with pytest.raises(SourceError, match="diffusers pipeline"):
        resolve_hub("x/bad", FolderFetcher(repo))


def test_download_errors_become_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What huggingface_hub raises is mapped to one-line vram errors (no network: the failing call is injected)."""
    import httpx
    import huggingface_hub.errors as e

    monkeypatch.setenv("VRAM_CACHE_DIR", str(tmp_path / "cache"))
    f = HuggingFaceFetcher()

    def raising(exc: BaseException):
        def fn() -> None:
            raise exc

        return fn

    with pytest.raises(OfflineError, match="not reachable"):
        f._call("org/m", "config.json", raising(e.OfflineModeIsEnabled("offline")))
    with pytest.raises(OfflineError, match="not reachable"):
        f._call("org/m", "config.json", raising(httpx.ConnectError("no route")))
    with pytest.raises(OfflineError, match="not reachable"):
        f._call("org/m", "config.json", raising(OSError("network unreachable")))
    resp = httpx.Response(403, request=httpx.Request("GET", "https://example.invalid/x"))
    with pytest.raises(SourceError, match=r"gated repo.*HF_TOKEN"):
        f._call("org/m", "config.json", raising(e.GatedRepoError("gated", response=resp)))
    resp404 = httpx.Response(404, request=httpx.Request("GET", "https://example.invalid/x"))
    with pytest.raises(SourceError, match="no such repo"):
        f._call("org/m", "config.json", raising(e.RepositoryNotFoundError("missing", response=resp404)))


def test_cached_ranges_are_not_fetched_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VRAM_CACHE_DIR", str(tmp_path / "cache"))
    f = HuggingFaceFetcher()
    calls = []

    def once(repo: str, what: str, fn: object) -> bytes:
        calls.append(what)
        return b"header-bytes"

    monkeypatch.setattr(f, "_call", once)
    assert f.get_range("org/m", "model.safetensors", 0, 100) == b"header-bytes"
    assert f.get_range("org/m", "model.safetensors", 0, 100) == b"header-bytes"
    assert calls == ["model.safetensors"]


def test_catalog_names_never_reach_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("network")

    monkeypatch.setattr("vram.sources.hub.resolve_hub", boom)
    assert resolve_model("meta-llama/Llama-3.1-8B-Instruct").entry is not None


def test_unknown_repo_goes_to_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(
        "vram.sources.hub.resolve_hub", lambda repo: seen.append(repo) or (_ for _ in ()).throw(OfflineError("offline"))
    )
    with pytest.raises(OfflineError):
        resolve_model("not-in/the-catalog")
    assert seen == ["not-in/the-catalog"]


class _RangeServer:
    """A loopback HTTP server serving one folder at /{repo}/resolve/main/{file}; `honour_range=False` answers 200
    with the whole (large) body, like a server that ignores Range."""

    def __init__(self, root: Path, honour_range: bool = True) -> None:
        import http.server
        import threading

        outer = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.headers.get("Range", ""))
                data = (root / self.path.rsplit("/", 1)[1]).read_bytes()
                rng = self.headers.get("Range")
                if rng and honour_range:
                    a, b = (int(x) for x in rng.removeprefix("bytes=").split("-"))
                    body = data[a : b + 1]
                    self.send_response(206)
                else:
                    body = data
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_real_range_requests_over_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real fetcher's range reads against a local server: header bytes only, cached afterwards."""
    from vram.sources.hub import remote_header_tensors

    monkeypatch.setenv("VRAM_CACHE_DIR", str(tmp_path / "cache"))
    big = {"w": np.zeros((512, 1024), np.float32)} | llama_tensors()  # 2 MiB of data behind the header
    folder = write_folder(tmp_path / "srv", big)
    server = _RangeServer(folder)
    try:
        f = HuggingFaceFetcher(endpoint=server.url)
        tensors = remote_header_tensors(f, "org/m", "model.safetensors")
        assert sum(t.nbytes for t in tensors) == sum(a.nbytes for a in big.values())
        assert server.requests == [f"bytes=0-{FIRST_READ_BYTES - 1}"]
        remote_header_tensors(f, "org/m", "model.safetensors")  # second time: from the cache
        assert len(server.requests) == 1
    finally:
        server.close()
    sloppy = _RangeServer(folder, honour_range=False)
    try:
        f = HuggingFaceFetcher(endpoint=sloppy.url)
        monkeypatch.setenv("VRAM_CACHE_DIR", str(tmp_path / "cache2"))
        data = f.get_range("org/m", "model.safetensors", 0, 1000)
        assert len(data) == 1000  # cut at the range even though the server sent everything
        with pytest.raises(SourceError, match="ignored the byte range"):
            f.get_range("org/m", "model.safetensors", 8, 1000)
    finally:
        sloppy.close()


def test_gguf_repo_read_from_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repo of GGUF files (no config.json): the chosen file's header is fetched in growing ranges, never the
    tensors, and gives the same model as the local file."""
    from vram.sources import resolve_local_weights
    from vram.sources.synth import TinyModel, write_gguf

    repo = tmp_path / "gguf-repo"
    repo.mkdir()
    monkeypatch.setattr("vram.sources.hub._first_gguf_read", lambda: 4096)  # the header needs several reads
    write_gguf(repo / "tiny-Q8_0.gguf", TinyModel(weight_type="Q8_0"))
    write_gguf(repo / "tiny-F16.gguf", TinyModel())
    write_gguf(repo / "tiny-Q4_0.gguf", TinyModel(weight_type="Q4_0"), split_max_tensors=20)

    class SizedFetcher(FolderFetcher):
        def get_size(self, repo: str, name: str) -> int:
            return (self.root / name).stat().st_size

    f = SizedFetcher(repo)
    rm = resolve_hub("someone/tiny-GGUF:Q8_0", f)
    local = resolve_local_weights(repo / "tiny-Q8_0.gguf")
    assert rm.spec.params == local.spec.params and rm.weights_override_bytes == local.weights_override_bytes
    size = (repo / "tiny-Q8_0.gguf").stat().st_size
    fetched = sum(n for _, _, n in f.ranges)
    assert len(f.ranges) > 1 and fetched < size // 4  # the header only, in growing reads
    split = resolve_hub("someone/tiny-GGUF:q4_0", SizedFetcher(repo))  # both parts of a split model
    assert (
        split.weights_override_bytes
        == resolve_local_weights(next(repo.glob("tiny-Q4_0-00001-*.gguf"))).weights_override_bytes
    )
    with pytest.raises(SourceError, match="several GGUF files"):
        resolve_hub("someone/tiny-GGUF", SizedFetcher(repo))
    with pytest.raises(SourceError, match="no GGUF files match"):
        resolve_hub("someone/tiny-GGUF:IQ2_XS", SizedFetcher(repo))
