"""Name -> (config dataclass, implementation) registries.

Every hardware implementation registers a config dataclass under a name, right beside
its class; simulated twins and test fakes register in the same registry. Factories look
the name up, so adding a backend never means editing an ``if type == ...`` chain.

Example:
    >>> @dataclass
    ... class FooArmConfig:
    ...     port: int = 1
    >>> @ARMS.register("foo", FooArmConfig)
    ... class FooArm(Arm): ...
    >>> arm = ARMS.make({"type": "foo", "port": 2})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Raised for an unknown name or a config that does not fit its dataclass."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return str(self.args[0]) if self.args else ""


def config_from_dict(config_cls: type, values: Mapping[str, Any]) -> Any:
    """Build ``config_cls`` from a plain mapping, rejecting unknown keys by name.

    Args:
        config_cls: a dataclass type.
        values: keys of the dataclass; nested mappings are passed as they are.

    Returns:
        The dataclass instance (its ``__post_init__`` validation has run).
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise RegistryError(
            f"{config_cls.__name__} has no field(s) {unknown}; valid fields: {sorted(names)}"
        )
    return config_cls(**_check_scalars(config_cls, dict(values)))


def _check_scalars(config_cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Fields annotated exactly ``float`` / ``int`` / ``bool`` must get one (an int is a fine float):
    ``learner.actor_lr=abc`` is refused by name here instead of failing later with a TypeError."""
    import typing

    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check against
        return values
    for name, value in values.items():
        want = hints.get(name)
        if want is float and isinstance(value, str):  # YAML 1.1 reads `3e-06` (no dot) as a string
            try:
                value = values[name] = float(value)
            except ValueError:
                pass
        if want is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = float(value)
        elif want in (float, int, bool) and not (isinstance(value, want) and (want is bool or not isinstance(value, bool))):
            raise RegistryError(f"{config_cls.__name__}.{name} must be {want.__name__}, got {value!r}")
    return values


class Registry(Generic[T]):
    """A registry of implementations of one interface (``Arm``, ``Camera``, ...).

    Args:
        kind: human name of the interface, used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[type, type[T]]] = {}

    def register(self, name: str, config_cls: type) -> Callable[[type[T]], type[T]]:
        """Class decorator registering ``cls`` with its config dataclass under ``name``."""
        if not dataclasses.is_dataclass(config_cls):
            raise TypeError(f"{config_cls!r} must be a dataclass")

        def deco(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name][1] is not cls:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = (config_cls, cls)
            cls.registered_name = name  # type: ignore[attr-defined]
            cls.config_class = config_cls  # type: ignore[attr-defined]
            return cls

        return deco

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def entry(self, name: str) -> tuple[type, type[T]]:
        """(config dataclass, implementation class) registered under ``name``."""
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} type {name!r}; registered: {self.names()}"
            ) from None

    def config(self, spec: Mapping[str, Any]) -> Any:
        """Config dataclass from a mapping with a ``type`` key (e.g. a hydra node)."""
        spec = dict(spec)
        if "type" not in spec:
            raise RegistryError(f"{self.kind} config needs a 'type' key; got keys {sorted(spec)}")
        name = spec.pop("type")
        config_cls, _ = self.entry(name)
        return config_from_dict(config_cls, spec)

    def make(self, spec: Mapping[str, Any] | Any, **kwargs: Any) -> T:
        """Instantiate from a ``{'type': name, ...}`` mapping or a registered config instance.

        Extra ``kwargs`` go to the implementation's constructor (e.g. a shared sim world).
        No I/O happens here: call ``connect()`` on the result.
        """
        if isinstance(spec, Mapping):
            name = spec["type"] if "type" in spec else None
            cfg = self.config(spec)
        else:
            name = next((n for n, (c, _) in self._entries.items() if isinstance(spec, c)), None)
            if name is None:
                raise RegistryError(f"{type(spec).__name__} is not a registered {self.kind} config")
            cfg = spec
        _, cls = self.entry(name)
        return cls(cfg, **kwargs)  # type: ignore[call-arg]
