"""Name -> entry registries: one per concept (models, randomizations, data sets).

:mod:`rethink_jax.models.registry`, :mod:`rethink_jax.corruption.registry`
and :data:`rethink_jax.data.DATASETS` are each one :class:`Registry`; config
validation, the data paths, the trainer and the manifests read them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
  """Entries of one kind by name, in registration order.

  Args:
    kind: what an entry is, for messages ("model").
    hint: how to add one, for the message of an unknown name.
    entries: the dict to hold them (a module's public table), or a new one.
    error: the exception type for an unknown or taken name.
  """

  def __init__(self, kind: str, hint: str,
               entries: dict[str, T] | None = None,
               error: type[ValueError] = ValueError):
    self.kind = kind
    self.hint = hint
    self.entries: dict[str, T] = {} if entries is None else entries
    self.error = error

  def register(self, name: str, entry: T) -> T:
    """Adds ``entry`` as ``name``; the same name cannot hold another entry."""
    if name in self.entries and self.entries[name] != entry:
      raise self.error(f"a {self.kind} named {name!r} is already registered;"
                       f" choose another name.")
    self.entries[name] = entry
    return entry

  def names(self) -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(self.entries)

  def get(self, name: str) -> T:
    """The entry ``name``; an error naming the choices if there is none."""
    if name not in self.entries:
      raise self.error(f"unknown {self.kind} {name!r}; choose one of "
                       f"{', '.join(self.entries)} ({self.hint}).")
    return self.entries[name]
