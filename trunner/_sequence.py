"""Sequence safety: SequenceChecker and SequenceLocal."""

from __future__ import annotations

import weakref
from typing import Generic, TypeVar, final, overload

from ._context import current_sequence_token
from ._errors import NoCurrentRunnerError, SequenceViolationError

T = TypeVar("T")


@final
class SequenceChecker:
    """Asserts that code always runs on one sequence, like Chromium's.

    A checker made inside a task is bound to that task's sequence; one made
    outside any runner binds to the first sequence that checks it. A sequenced
    or thread runner is one sequence; each task of a parallel runner is a
    sequence of its own. Keep one in an object whose state must only be touched
    from one sequence, and call `check` in its methods.
    """

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token = current_sequence_token()

    def check(self) -> None:
        """Raise unless called on the checker's sequence (binding it if unbound).

        Raises:
            SequenceViolationError: when called from another sequence, or from
                outside any runner.
        """
        token = current_sequence_token()
        if token is None:
            raise SequenceViolationError(
                "SequenceChecker.check() was called outside any runner; the object "
                "it guards belongs to a sequence: post the call to its runner"
            )
        if self._token is None:
            self._token = token
        elif self._token is not token:
            raise SequenceViolationError(
                "SequenceChecker.check() was called from another sequence than the "
                "one it is bound to; post the call to the owning runner, or detach() "
                "the checker when ownership moves on purpose"
            )

    def called_on_valid_sequence(self) -> bool:
        """Return whether `check` would pass (binding the checker if unbound)."""
        try:
            self.check()
        except SequenceViolationError:
            return False
        return True

    def detach(self) -> None:
        """Unbind the checker: the next `check` binds it to the caller's sequence."""
        self._token = None


_MISSING = object()


@final
class SequenceLocal(Generic[T]):
    """A value per sequence, like a `contextvars.ContextVar` scoped to a sequence.

    Every task of a sequenced (or thread) runner sees the same value; each task
    of a parallel runner has its own. Values go away with their sequence.

    Args:
        default: what `get` returns on a sequence that has not set a value; without
            it, `get` raises `LookupError` there.
    """

    __slots__ = ("_default", "_values")

    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self, default: T) -> None: ...
    def __init__(self, default: object = _MISSING) -> None:
        self._default = default
        self._values: weakref.WeakKeyDictionary[object, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """Return the current sequence's value.

        Raises:
            NoCurrentRunnerError: outside any runner.
            LookupError: if the sequence has no value and there is no default.
        """
        token = self._token()
        try:
            return self._values[token]
        except KeyError:
            if self._default is _MISSING:
                raise LookupError("this sequence has not set a value") from None
            return self._default  # type: ignore[return-value]  # the default is a T once given

    def set(self, value: T) -> None:
        """Set the current sequence's value.

        Raises:
            NoCurrentRunnerError: outside any runner.
        """
        self._values[self._token()] = value

    def reset(self) -> None:
        """Forget the current sequence's value, so that `get` gives the default."""
        self._values.pop(self._token(), None)

    @staticmethod
    def _token() -> object:
        token = current_sequence_token()
        if token is None:
            raise NoCurrentRunnerError(
                "SequenceLocal is only usable inside a task of a runner"
            )
        return token
