"""Reversible attribute patches: every hook is undone by its handle."""
from __future__ import annotations


class Patches:
    """A stack of ``setattr`` patches, undone in reverse order."""

    def __init__(self) -> None:
        self._undo: list = []

    def set(self, owner, name: str, value) -> object:
        """Replace ``owner.name`` with ``value``; return the original."""
        original = owner.__dict__[name] if isinstance(owner, type) and name in owner.__dict__ \
            else getattr(owner, name)
        had_own = not isinstance(owner, type) or name in owner.__dict__
        setattr(owner, name, value)
        self._undo.append((owner, name, original, had_own))
        return original

    def add_undo(self, fn) -> None:
        self._undo.append((None, None, fn, None))

    def uninstall(self) -> None:
        while self._undo:
            owner, name, original, had_own = self._undo.pop()
            if owner is None:
                original()
            elif had_own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)
