"""Every error vram raises. The CLI turns them into one line and exit status 2; the web API into a 4xx naming the
field."""

from __future__ import annotations


class VramError(Exception):
    """Base class. `field` names the input at fault when there is one (used by the API for its 4xx answers)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class BadInput(VramError):
    """A number, name or combination of options that cannot be used."""


class UnknownName(VramError):
    """No catalog entry matches a name; carries close names."""

    what = "name"
    listing = "`vram models`"

    def __init__(self, query: str, suggestions: list[str] | None = None) -> None:
        self.query = query
        self.suggestions = list(suggestions or [])
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else f"; try {self.listing}"
        super().__init__(f"unknown {self.what} {query!r}{hint}", field=self.what.lower())


class UnknownModel(UnknownName):
    """No catalog entry, file or folder matches the model name."""

    what = "model"


class UnknownGpu(UnknownName):
    what = "GPU"
    listing = "`vram gpus`"


class UnsupportedArchitecture(VramError):
    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        extra = f": {detail}" if detail else ""
        super().__init__(f"unsupported architecture {name!r}{extra}", field="model")


class ConfigError(VramError):
    """A config.json that cannot describe a model: missing or malformed fields (named)."""


class SourceError(VramError):
    """A weights file (safetensors, GGUF) or a remote source that cannot be read."""


class OfflineError(SourceError):
    """A download was needed and the network is not reachable."""


class NeedsExtra(VramError):
    """An optional feature whose extra is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the optional extra: pip install 'vram[{extra}]'")
