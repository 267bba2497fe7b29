"""vram.records behaves as `dataclasses` does for what the project uses (frozen and mutable records, field
options, inheritance, `__post_init__`, fields / replace / asdict), side by side with the standard module."""

from __future__ import annotations

import dataclasses
import pickle
from typing import ClassVar

import pytest

from vram.records import FrozenInstanceError, asdict, field, fields, record, replace


@record(frozen=True)
class Point:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: tuple[str, ...] = field(default_factory=tuple)
    note: str = field(default="", repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class StdPoint:
    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)
    note: str = dataclasses.field(default="", repr=False, compare=False)


@record(frozen=True)
class Labelled(Point):
    label: str = "a"

    def __post_init__(self) -> None:
        if not self.label:
            raise ValueError("label: empty")
        object.__setattr__(self, "label", self.label.upper())


@record()
class Counter:
    n: int = 0
    items: list[int] = field(default_factory=list)


def test_fields_defaults_and_repr_as_dataclasses() -> None:
    assert [f.name for f in fields(Point)] == [f.name for f in dataclasses.fields(StdPoint)]
    assert [f.name for f in fields(Point(1))] == ["x", "y", "tags", "note"]  # an instance too; no ClassVar
    p, s = Point(1, note="n"), StdPoint(1, note="n")
    assert repr(p) == repr(s).replace("StdPoint", "Point")
    assert (p.x, p.y, p.tags, p.note) == (s.x, s.y, s.tags, s.note)
    assert Point(1, 2, ("a",)) == Point(x=1, y=2, tags=("a",))
    assert fields(Point)[3].repr is False and fields(Point)[1].default == 0
    assert Point.kind == "point" and Point.y == 0  # class attributes: the ClassVar and the defaults
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]
    assert fields(Point)[0].metadata == {}

    @record(frozen=True)
    class Meta:
        a: int = field(default=1, metadata={"help": "h"})

    assert dict(fields(Meta)[0].metadata) == {"help": "h"} and Meta().a == 1


def test_equality_and_hash_as_dataclasses() -> None:
    assert Point(1, note="a") == Point(1, note="b")  # compare=False
    assert hash(Point(1, note="a")) == hash(Point(1, note="b"))
    assert Point(1) != Point(2)
    assert Point(1) != StdPoint(1)  # another class
    assert Point(1) != Labelled(1)  # a subclass is another class, as for dataclasses
    assert len({Point(1), Point(1), Point(2)}) == 2
    assert Counter() == Counter()
    with pytest.raises(TypeError):
        hash(Counter())  # mutable: not hashable, as a dataclass with eq


def test_frozen_and_mutable() -> None:
    p = Point(1)
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.x  # type: ignore[misc]
    c = Counter()
    c.n += 1
    c.items.append(3)
    assert c == Counter(1, [3]) and Counter().items == []  # a fresh list per instance


def test_inheritance_and_post_init() -> None:
    lab = Labelled(1, label="b")
    assert [f.name for f in fields(lab)] == ["x", "y", "tags", "note", "label"]
    assert lab.label == "B"
    assert replace(lab, x=5) == Labelled(5, label="B")  # replace goes through __init__ and __post_init__
    with pytest.raises(ValueError, match="label"):
        replace(lab, label="")


def test_replace_and_asdict() -> None:
    p = Point(1, 2, ("a",), note="n")
    q = replace(p, y=3)
    assert (q.x, q.y, q.tags, q.note) == (1, 3, ("a",), "n") and p.y == 2
    with pytest.raises(TypeError):
        replace(p, z=1)
    nested = Labelled(1, tags=("t",))
    assert asdict(nested) == {"x": 1, "y": 0, "tags": ("t",), "note": "", "label": "A"}

    @record(frozen=True)
    class Box:
        items: tuple[Point, ...]
        by_name: dict[str, Point] = field(default_factory=dict)

    box = Box((Point(1),), {"p": Point(2)})
    assert asdict(box) == {
        "items": ({"x": 1, "y": 0, "tags": (), "note": ""},),
        "by_name": {"p": {"x": 2, "y": 0, "tags": (), "note": ""}},
    }
    with pytest.raises(TypeError):
        fields(object())


def test_declaration_errors_as_dataclasses() -> None:
    with pytest.raises(ValueError, match="mutable default"):

        @record()
        class Bad:
            items: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="non-default argument"):

        @record()
        class Order:
            a: int = 1
            b: int  # type: ignore[misc]

    with pytest.raises(ValueError):
        field(default=1, default_factory=int)


def test_init_signature_and_errors_name_the_fields() -> None:
    import inspect

    Point(0)  # the first record made gives the class its __init__
    assert list(inspect.signature(Point).parameters) == ["x", "y", "tags", "note"]
    assert inspect.signature(Point).parameters["y"].default == 0
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        Point(y=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(1, z=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)  # type: ignore[misc]
    assert Point.__init__.__qualname__ == "Point.__init__"
    assert Counter().items is not Counter().items  # a factory is called for each record made


def test_pickles() -> None:
    lab = Labelled(1, label="b")
    assert pickle.loads(pickle.dumps(lab)) == lab
