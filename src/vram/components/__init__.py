"""Memory components: small pure functions, each returning a Component (bytes + one-line explanation)."""

from __future__ import annotations

from ..records import record


@record(frozen=True)
class Component:
    """One line of an estimate's breakdown."""

    name: str
    bytes: int
    explanation: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "bytes": self.bytes, "explanation": self.explanation}


__all__ = ["Component"]
