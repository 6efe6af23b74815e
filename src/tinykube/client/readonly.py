"""Read-only views for objects the in-process client shares instead of copying.

Informers ask for ``readonly`` lists and watches. Over the in-process transport they
then receive the store's own parsed objects: no JSON decode per event and no second
copy in memory, which is most of what an informer costs at 10,000 pods. The price is
client-go's rule, now load-bearing: an object from an informer (or a readonly list or
watch) must never be changed in place; deep-copy it first (``copy.deepcopy`` of a
shared object is an ordinary mutable copy).

``TINYKUBE_CHECK_SHARED=1`` (the test suite sets it) hands out frozen copies instead:
dicts and lists whose mutating methods raise :class:`SharedObjectMutation` and report
it (:func:`tinykube.api.checks.report`: the suite fails a test that caused one, and a
server whose log mentions one), so a component that breaks the rule fails its tests
rather than corrupting the store's cache in production.
"""

from __future__ import annotations

from typing import Any, NoReturn

import orjson

from ..api import checks

CHECK = checks.CHECK
VIOLATIONS = checks.VIOLATIONS


class SharedObjectMutation(TypeError):
    """Something changed an object it shares with the store (see the module docstring)."""


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    checks.report("SharedObjectMutation: a shared object was changed in place")
    raise SharedObjectMutation("objects from informers and readonly lists/watches are shared: deep-copy first")


def _thaw(v: Any) -> Any:
    """A plain deep copy (orjson writes dict and list subclasses as JSON objects and arrays)."""
    return orjson.loads(orjson.dumps(v))


_MISSING = object()


class FrozenDict(dict[str, Any]):
    """Refuses every change. Writes that change nothing (a key set to an equal value, ``setdefault`` of a
    present key, ``pop`` of an absent one with a default) are allowed: they cannot corrupt what is shared,
    and defaulting code re-applied to stored, already-defaulted objects does exactly that."""

    __slots__ = ()
    __delitem__ = popitem = clear = update = __ior__ = _refuse

    def __setitem__(self, key: str, value: Any) -> None:
        if dict.get(self, key, _MISSING) != value:
            _refuse()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            _refuse()
        return self[key]

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        if key in self or default is _MISSING:
            _refuse()
        return default

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        out: dict[str, Any] = _thaw(self)
        return out


class FrozenList(list[Any]):
    __slots__ = ()
    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = \
        __iadd__ = __imul__ = _refuse

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        out: list[Any] = _thaw(self)
        return out


def freeze(v: Any) -> Any:
    """A frozen deep copy of a JSON value."""
    if isinstance(v, dict):
        return FrozenDict({k: freeze(x) for k, x in v.items()})
    if isinstance(v, list):
        return FrozenList(freeze(x) for x in v)
    return v


def share(obj: dict[str, Any]) -> dict[str, Any]:
    """How a shared object is handed out: itself, or a frozen copy when checking."""
    if CHECK:
        out: dict[str, Any] = freeze(obj)
        return out
    return obj
