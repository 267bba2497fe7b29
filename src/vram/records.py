"""Records: the part of `dataclasses` this project uses, without `dataclasses`' start-up cost.

    @record(frozen=True)
    class Component:
        name: str
        bytes: int
        explanation: str = field(default="", repr=False)

Why not `dataclasses` (issue 18, the CLI's cold start): importing it imports `inspect` (with `ast`, `dis`,
`tokenize`, `linecache`), and every class it makes writes six methods as source text and compiles them while its
module is imported — about 1 ms per class on the project's machine, with some 30 classes on the path of
`vram estimate`: most of what the command spent beyond the interpreter's own start. A record class compiles
nothing of its own: its `__init__` is made when its first record is, from a template compiled once per shape
(number of fields, which have factories, a `__post_init__`) with the parameters and stored names set to the
class's fields (see `_make_init`); equality, hashing, `repr` and the frozen guard are shared functions that read
the field list. Classes a run never instantiates (most options classes, in one command) cost no template.

What it does is what `dataclasses` does for the options this project uses:

* fields are the class's annotations in order, after those of record bases; `ClassVar[...]` annotations are not
  fields (annotations are read as written, which `from __future__ import annotations` makes strings);
* `field(default=, default_factory=, repr=, hash=, compare=, metadata=)`; a default that cannot be hashed (a list,
  a dict, a set) is refused, as `dataclasses` refuses it; a field without a default after one with a default is an
  error;
* `__init__` takes every field (positionally or by name), stores them in the instance's `__dict__` (past a frozen
  class's guard, as dataclasses does with `object.__setattr__`; a mutable record's too: none defines its own
  `__setattr__`) and then calls `__post_init__()` when the class has one; methods the class defines itself are
  kept;
* `==` compares records of the same class field by field (the fields with `compare=True`); `frozen=True` makes
  assignment and deletion raise `FrozenInstanceError` (an AttributeError) and hashes the compared fields (those
  with `hash=False` left out); a mutable record is not hashable;
* `fields(record)`, `replace(record, **changes)` (a new record through `__init__`, so `__post_init__` runs again)
  and `asdict(record)` (records, lists, tuples and dicts inside converted recursively, other values as they are).
"""

from __future__ import annotations

from operator import attrgetter
from types import CodeType, FunctionType, MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:  # for mypy only: `typing` is not imported at run time (a few milliseconds of every start)
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_options: object) -> object:
        return lambda function: function


__all__ = ["FrozenInstanceError", "asdict", "field", "fields", "record", "replace"]


class FrozenInstanceError(AttributeError):
    """Assignment to (or deletion of) a field of a frozen record."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


class Field:
    """One field of a record: its name, annotation (as written) and the options `field()` was given."""

    __slots__ = ("compare", "default", "default_factory", "hash", "metadata", "name", "repr", "type")

    def __init__(
        self,
        default: Any = MISSING,
        default_factory: Callable[[], Any] | Any = MISSING,
        repr: bool = True,
        hash: bool | None = None,
        compare: bool = True,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("a field cannot have both a default and a default_factory")
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.metadata = MappingProxyType(dict(metadata)) if metadata else _NO_METADATA

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, type={self.type!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """A field's options, given as its default in the class body."""
    return Field(default, default_factory, repr, hash, compare, metadata)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "") or repr(annotation)
    return str(text).removeprefix("typing.").startswith("ClassVar")


def _collect(cls: type) -> tuple[Field, ...]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in base.__dict__.get("__record_fields__", ()):
            found[f.name] = f
    # the class's own annotations as written (inspect.get_annotations would import inspect, which is the point)
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            f = value
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        else:
            f = Field(default=value)
        f.name, f.type = name, annotation
        if f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(f.default).__name__} for field {name} is not allowed: use default_factory"
            )
        found[name] = f
    out = tuple(found.values())
    seen_default = False
    for f in out:
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    return out


_TEMPLATES: dict[tuple[int, tuple[int, ...], bool], CodeType] = {}


def _slot(i: int) -> str:
    return f"\0field {i}"  # a placeholder no field name can be


def _template(arity: int, factories: tuple[int, ...], post_init: bool) -> CodeType:
    """The code of an `__init__` of `arity` parameters that stores them in the instance's `__dict__` (past the
    class's own `__setattr__`, as a frozen dataclass's `__init__` does with object.__setattr__) under placeholder
    names, a factory field's as `__factory_<i>__()` when its parameter is `__missing__`, then calls
    `self.__post_init__()` when the class has one. Compiled once per shape in a process."""
    key = (arity, factories, post_init)
    code = _TEMPLATES.get(key)
    if code is None:
        values = ", ".join(
            f"{_slot(i)!r}: " + (f"__factory_{i}__() if p{i} is __missing__ else p{i}" if i in factories else f"p{i}")
            for i in range(arity)
        )
        lines = [f"__update__(self.__dict__, {{{values}}})"]
        if post_init:
            lines.append("self.__post_init__()")
        params = ", ".join(["self", *(f"p{i}" for i in range(arity))])
        source = f"def __init__({params}):\n" + "".join(f"    {line}\n" for line in lines)
        namespace: dict[str, Any] = {}
        exec(source, {}, namespace)
        code = _TEMPLATES[key] = namespace["__init__"].__code__
    return code


def _renamed(const: object, names: dict[str, str]) -> object:
    if isinstance(const, str):
        return names.get(const, const)
    if isinstance(const, tuple):
        return tuple(_renamed(c, names) for c in const)
    return const


def _make_init(cls: type, fields_: tuple[Field, ...]) -> Callable[..., None]:
    """`__init__(self, <the fields>)`, positional or by name, with the fields' defaults.

    Made without compiling anything per class: the code is the template of its shape with the parameters renamed
    to the fields and the placeholders replaced by the field names (CodeType.replace: the bytecode reads its
    parameters by position and the names it stores from its constants, so it is the code one would write for the
    class, and the function has the fields' names for keyword arguments, error messages and signatures)."""
    names = tuple(f.name for f in fields_)
    factories = tuple(i for i, f in enumerate(fields_) if f.default_factory is not MISSING)
    template = _template(len(names), factories, hasattr(cls, "__post_init__"))
    slots = {_slot(i): name for i, name in enumerate(names)}
    code = template.replace(
        co_varnames=("self", *names),
        co_consts=tuple(_renamed(c, slots) for c in template.co_consts),
        co_name="__init__",
        co_qualname=f"{cls.__qualname__}.__init__",
    )
    # a factory field's default is MISSING: its factory is called when it is not given
    defaults = tuple(f.default for f in fields_ if f.default is not MISSING or f.default_factory is not MISSING)
    env = {"__update__": dict.update, "__missing__": MISSING}
    env.update((f"__factory_{i}__", fields_[i].default_factory) for i in factories)
    init = FunctionType(code, env, "__init__", defaults or None)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    return init


def _first_init(cls: type, fields_: tuple[Field, ...]) -> Callable[..., None]:
    """The class's `__init__` until its first record is made: it makes the real one (`_make_init`), puts it in the
    class and runs it, so that a class a run never instantiates (most options classes, in one command) costs no
    template compiled for its shape."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init = _make_init(cls, fields_)
        type.__setattr__(cls, "__init__", init)
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _key(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function from a record to the tuple of those fields' values (operator.attrgetter, in C)."""
    if not names:
        return lambda _record: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return getter


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__class__.__record_eq_key__  # read from the class: a plain function there, not a bound method
    return key(self) == key(other)


def _hash(self: Any) -> int:
    return hash(self.__class__.__record_hash_key__(self))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__ if f.repr)
    return f"{self.__class__.__qualname__}({shown})"


def _frozen_setattr(self: Any, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _process(cls: type[T], frozen: bool) -> type[T]:
    fields_ = _collect(cls)
    own = cls.__dict__
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    setattr(cls, "__record_fields__", fields_)  # noqa: B010 (a name mypy does not know on the class)
    if "__init__" not in own:
        setattr(cls, "__init__", _first_init(cls, fields_))  # noqa: B010
    if "__repr__" not in own:
        setattr(cls, "__repr__", _repr)  # noqa: B010
    if "__eq__" not in own:
        setattr(cls, "__record_eq_key__", _key([f.name for f in fields_ if f.compare]))  # noqa: B010
        setattr(cls, "__eq__", _eq)  # noqa: B010
    if frozen:
        setattr(cls, "__setattr__", _frozen_setattr)  # noqa: B010
        setattr(cls, "__delattr__", _frozen_delattr)  # noqa: B010
    if not explicit_hash:
        if frozen:
            hashed = [f.name for f in fields_ if (f.compare if f.hash is None else f.hash)]
            setattr(cls, "__record_hash_key__", _key(hashed))  # noqa: B010
            setattr(cls, "__hash__", _hash)  # noqa: B010
        else:
            setattr(cls, "__hash__", None)  # noqa: B010
    if "__match_args__" not in own:
        setattr(cls, "__match_args__", tuple(f.name for f in fields_))  # noqa: B010
    return cls


@dataclass_transform(field_specifiers=(field, Field))
def record(*, frozen: bool = False) -> Callable[[type[T]], type[T]]:
    """Make a class a record: `@record()`, or `@record(frozen=True)` for an immutable, hashable one."""
    return lambda cls: _process(cls, frozen)


def fields(obj: Any) -> tuple[Field, ...]:
    """The fields of a record (or record class), in order."""
    try:
        return obj.__record_fields__  # type: ignore[no-any-return]
    except AttributeError:
        raise TypeError(f"{obj!r} is not a record") from None


def replace(obj: T, /, **changes: Any) -> T:
    """A new record like `obj` with some fields changed (made through `__init__`: checked again)."""
    for f in fields(obj):
        if f.name not in changes:
            changes[f.name] = getattr(obj, f.name)
    return obj.__class__(**changes)


def is_record(obj: object) -> bool:
    return hasattr(obj if isinstance(obj, type) else type(obj), "__record_fields__")


def asdict(obj: Any) -> dict[str, Any]:
    """A record as a dict of its fields; records, lists, tuples and dicts inside are converted too."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _plain(value: Any) -> Any:
    if hasattr(type(value), "__record_fields__"):
        return asdict(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
        return type(value)(*(_plain(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_plain(k), _plain(v)) for k, v in value.items())
    return value
