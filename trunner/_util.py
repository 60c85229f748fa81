"""Internal helpers: module metadata fix-up, argument checks and naming."""

from __future__ import annotations

import functools
import inspect
import math
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import Mapping

    import trio
    from attrs import Attribute

#: The function of a task once it is stored: its signature was checked at the
#: posting call, where a TypeVarTuple ties it to the arguments.
AnyCallable: TypeAlias = Callable[..., object]  # type: ignore[explicit-any]  # erased on purpose, see above

_REAL: Final = (int, float)
#: The flags of the code of a generator function or an async generator function.
_GENERATOR_FLAGS: Final = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR

T = TypeVar("T")


def clock_autojumps(clock: trio.abc.Clock) -> bool:
    """Return whether ``clock`` is a `trio.testing.MockClock` that autojumps.

    ``trio.testing`` is looked up, never imported: importing it imports pytest
    (when installed), which ``import trunner`` must not do. A MockClock can
    only exist once ``trio.testing`` has been imported by its user.
    """
    testing = sys.modules.get("trio.testing")
    if testing is None:
        return False
    mock_clock: type[trio.testing.MockClock] = testing.MockClock
    return isinstance(clock, mock_clock) and clock.autojump_threshold != math.inf


async def wait_all_tasks_blocked(cushion: float) -> None:
    """`trio.testing.wait_all_tasks_blocked`, imported only when first used.

    Only for code that found an autojumping clock (`clock_autojumps`), so
    ``trio.testing`` is already imported then.
    """
    from trio.testing import wait_all_tasks_blocked as wait

    await wait(cushion)


def fixup_module_metadata(module_name: str, namespace: Mapping[str, object]) -> None:
    """Make public objects report the public module they are exported from.

    Reprs, tracebacks, pickles and the docs then say ``trunner.X`` rather than
    ``trunner._private.X``.
    """
    seen: set[int] = set()

    def fix_one(qualname: str, name: str, obj: object) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        mod = getattr(obj, "__module__", None)
        if mod is not None and mod.startswith("trunner."):
            obj.__module__ = module_name
            if isinstance(obj, type):
                obj.__name__ = name
                obj.__qualname__ = qualname
                for attr_name, attr_value in obj.__dict__.items():
                    fix_one(f"{qualname}.{attr_name}", attr_name, attr_value)

    for objname, obj in namespace.items():
        if not objname.startswith("_"):
            fix_one(objname, objname, obj)


def check_duration(name: str, value: object, *, allow_zero: bool = True) -> float:
    """Return ``value`` as a float number of seconds, or raise naming ``name``.

    Rejects non-numbers (`TypeError`), NaN, negative values and, when
    ``allow_zero`` is false, zero (`ValueError`). Infinity is allowed: it means
    "never".
    """
    if isinstance(value, bool) or not isinstance(value, _REAL):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if math.isnan(seconds):
        raise ValueError(f"{name} must be a number of seconds, not NaN")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return seconds


def check_optional_count(name: str, value: object) -> int | None:
    """Return ``value`` if it is None or a positive int, else raise naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int or None, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


def _refuse_type(name: str, value: object, cls: type[object], expected: str) -> None:
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be {expected}, not {value!r}")


def check_instance(
    cls: type[T], expected: str
) -> Callable[[object, Attribute[T], T], None]:
    """Return an attrs validator whose error names the argument in a user's words.

    attrs' own ``instance_of`` raises a tuple-shaped `TypeError` that quotes
    its ``Attribute``; this one says ``"traits must be a TaskTraits, not 5"``.
    """

    def check(instance: object, attribute: Attribute[T], value: T) -> None:
        del instance
        _refuse_type(attribute.alias or attribute.name, value, cls, expected)

    return check


def check_optional_instance(
    cls: type[T], expected: str
) -> Callable[[object, Attribute[T | None], T | None], None]:
    """Like `check_instance`, for an option that may also be None."""

    def check(
        instance: object, attribute: Attribute[T | None], value: T | None
    ) -> None:
        del instance
        if value is not None:
            _refuse_type(
                attribute.alias or attribute.name, value, cls, f"{expected} or None"
            )

    return check


def describe(fn: object) -> str:
    """Return a readable name for a callable, looking through `functools.partial`."""
    while isinstance(fn, functools.partial):
        fn = fn.func  # pyright: ignore[reportUnknownMemberType]  # partial's func is untyped
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) else repr(fn)


def _unwrap_partial(fn: object) -> object:
    while isinstance(fn, functools.partial):
        fn = fn.func  # pyright: ignore[reportUnknownMemberType]  # partial's func is untyped
    return fn


def is_async_callable(fn: object) -> bool:
    """Return whether calling ``fn`` returns a coroutine, judged without calling it.

    Looks through `functools.partial` and at the ``__call__`` of callable
    objects (a class is not async: calling it makes an instance).
    """
    fn = _unwrap_partial(fn)
    if inspect.iscoroutinefunction(fn):
        return True
    if isinstance(fn, type):
        return False
    call = getattr(fn, "__call__", None)  # noqa: B004  # an object with an async __call__
    return call is not None and inspect.iscoroutinefunction(_unwrap_partial(call))


def is_generator_callable(fn: object) -> bool:
    """Return whether ``fn`` is a generator or async generator function.

    Calling one runs none of its code: it only makes a generator. Cheap for
    functions, lambdas, methods and partials of them (a flag of their code):
    every post asks it of a function it has not seen just before.
    """
    fn = _unwrap_partial(fn)
    code = getattr(fn, "__code__", None)  # a function's, or a bound method's
    if isinstance(code, types.CodeType):
        return bool(code.co_flags & _GENERATOR_FLAGS)
    if not isinstance(fn, type):
        call = getattr(fn, "__call__", None)  # noqa: B004  # the object's own __call__
        if not inspect.isfunction(fn) and not inspect.ismethod(fn) and call is not None:
            fn = _unwrap_partial(call)
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def _accepts(fn: object, count: int) -> bool:
    # Whether fn can be called with ``count`` positional arguments; True when
    # its signature cannot be read (some builtins), as it may well accept them.
    try:
        inspect.signature(cast("AnyCallable", fn)).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


def check_arity(name: str, value: object, call: str) -> None:
    """Refuse a callable that cannot take the positional arguments of ``call``.

    ``call`` shows the call in the user's words, such as ``"reply(outcome)"``;
    its arguments are counted. A callable whose signature cannot be read
    (some builtins) is accepted.

    Raises:
        TypeError: naming ``name``.
    """
    inside = call[call.index("(") + 1 : call.rindex(")")]
    count = inside.count(",") + 1 if inside.strip() else 0
    if not _accepts(value, count):
        plural = "" if count == 1 else "s"
        raise TypeError(
            f"{name} must take {count} positional argument{plural}, as in "
            f"{call}; {describe(value)!r} does not"
        )


def _kind(fn: object) -> str:
    if is_async_callable(fn):
        return "async function"
    if not is_generator_callable(fn):
        return "function"
    if inspect.isasyncgenfunction(_unwrap_partial(fn)):
        return "async generator function"
    return "generator function"


def refuse_generator(name: str, value: object, call: str = "") -> None:
    """Refuse a generator or async generator function given where a function runs.

    Calling one runs none of its code, it only makes a generator: a task or a
    callback that is one would "succeed" having done nothing.

    Raises:
        TypeError: naming ``name`` (and showing ``call`` if given), when
            ``value`` is a generator or async generator function.
    """
    if is_generator_callable(value):
        kind = _kind(value)
        made = "an async generator" if kind.startswith("async") else "a generator"
        raise TypeError(
            f"{name} must be a plain or async function{', ' if call else ''}{call}; "
            f"the {kind} {describe(value)!r} would only make {made} and run none "
            "of its code"
        )


def check_plain_callable(name: str, value: object, call: str) -> None:
    """Refuse ``value`` unless it is a plain callable taking the arguments of ``call``.

    For callbacks that trunner calls and never awaits, such as hooks: an async
    function (or generator function) there would never run its body. ``call``
    shows the call in the user's words, such as ``"on_start(task)"``.

    Raises:
        TypeError: naming ``name``, when ``value`` is not callable, is async or
            a generator function, or does not take the arguments of ``call``.
    """
    if not callable(value):
        raise TypeError(f"{name} must be callable as {call}, not {value!r}")
    if is_async_callable(value) or is_generator_callable(value):
        raise TypeError(
            f"{name} must be a plain callable, {call}: trunner calls it and never "
            f"awaits or iterates it, so the {_kind(value)} {describe(value)!r} "
            "would never run; make it a plain def (start async work from it "
            "with a runner's post_task)"
        )
    check_arity(name, value, call)


def check_sync_or_async_callable(name: str, value: object, call: str) -> None:
    """Refuse ``value`` unless it is a sync or async callable matching ``call``.

    Generator and async generator functions are refused: calling one runs none
    of its code.

    Raises:
        TypeError: naming ``name``, when ``value`` is not callable, is a
            generator function, or does not take the arguments of ``call``.
    """
    if not callable(value):
        raise TypeError(f"{name} must be callable as {call}, not {value!r}")
    refuse_generator(name, value, call)
    check_arity(name, value, call)


def check_async_callable(name: str, value: object, call: str) -> None:
    """Refuse ``value`` unless it is an async callable taking the arguments of ``call``.

    Async functions, objects whose ``__call__`` is async and `functools.partial`
    of either pass.

    Raises:
        TypeError: naming ``name``, when ``value`` is not such a callable or
            does not take the arguments of ``call``.
    """
    if not callable(value):
        raise TypeError(
            f"{name} must be an async callable as async def {call}, not {value!r}"
        )
    if not is_async_callable(value):
        raise TypeError(
            f"{name} must be an async callable, async def {call}; the "
            f"{_kind(value)} {describe(value)!r} is not async"
        )
    check_arity(name, value, call)


def missing_extra(
    error: ModuleNotFoundError, extra: str, needed_by: str
) -> ModuleNotFoundError:
    """The error for an optional dependency that is not installed: names the extra.

    ``raise missing_extra(error, "jobs", "trunner.jobs") from error`` in an
    ``except ModuleNotFoundError as error`` around the imports of the
    dependency.
    """
    name = (error.name or "?").partition(".")[0]
    return ModuleNotFoundError(
        f"{needed_by} needs {name!r}, which is not installed: it comes with "
        f"the {extra!r} extra, pip install 'trunner[{extra}]'",
        name=name,
    )
