"""The handler registry: durable jobs name their function, never pickle it."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import TYPE_CHECKING, Final, ParamSpec, TypeVar, final

import attrs

from .._util import describe
from ._errors import UnknownHandlerError
from ._job import check_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from .._util import AnyCallable

P = ParamSpec("P")
R = TypeVar("R")

_POSITIONAL: Final = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
)


@final
@attrs.frozen
class HandlerSpec:
    """What the registry knows about one handler.

    Built by `Registry`, not by users.

    Attributes:
        name: the name jobs refer to the handler by.
        fn: the registered function, as it was given.
        is_async: whether ``fn`` is an async function (it is awaited), rather
            than a plain one.
        takes_argument: whether ``fn`` takes the job's arguments as its one
            positional parameter; if not, it is called with none.
        arg_type: the annotation of that parameter, with string annotations
            resolved; None if ``fn`` takes no argument or its parameter has no
            annotation (or ``object``, or ``Any``): any JSON value then.
        return_type: the return annotation, or None if there is none.
    """

    name: str
    fn: AnyCallable
    is_async: bool
    takes_argument: bool
    arg_type: object
    return_type: object

    def call_args(self, args: object) -> tuple[object, ...]:
        """Return the positional arguments to call ``fn`` with for ``args``.

        That is ``(args,)``, or ``()`` for a handler that takes no argument.
        """
        return (args,) if self.takes_argument else ()


@final
@attrs.define(eq=False)
class Registry:
    """The handlers that durable jobs can run, by name.

    A job stores the name of its handler, never the function, so a worker runs
    a job only if its registry has a handler of that name. A handler is an
    async function or a plain function that takes one positional parameter,
    the job's arguments, or none. Its annotation decides how the arguments are
    checked when a job is submitted and decoded when it runs: an attrs class,
    a dataclass, an enum, a `datetime.datetime`, containers of those and JSON
    values. A parameter without annotation takes any JSON value.

    Example::

        registry = trunner.jobs.Registry()

        @registry.handler("send_email")
        async def send_email(args: SendEmail) -> None: ...
    """

    _specs: dict[str, HandlerSpec] = attrs.field(
        init=False, factory=dict[str, HandlerSpec]
    )

    def handler(self, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Return a decorator that registers a function under ``name``.

        The decorator returns the function unchanged.

        Args:
            name: the name that jobs use to refer to the handler.

        Raises:
            TypeError: ``name`` is not a `str`, or the function does not take
                exactly zero or one positional parameter.
            ValueError: ``name`` is empty or another function is registered
                under it.
        """
        _check_name(name)

        def decorator(fn: Callable[P, R]) -> Callable[P, R]:
            self.register(name, fn)
            return fn

        return decorator

    def register(self, name: str, fn: AnyCallable) -> HandlerSpec:
        """Register ``fn`` under ``name`` and return its `HandlerSpec`.

        Registering the same function under the same name again does nothing.

        Raises:
            TypeError: ``name`` is not a `str`; ``fn`` is not callable, does not
                take exactly zero or one positional parameter, or has
                annotations that cannot be resolved.
            ValueError: ``name`` is empty or another function is registered
                under it.
        """
        _check_name(name)
        existing = self._specs.get(name)
        if existing is not None:
            if existing.fn == fn:  # == so that bound methods compare by target
                return existing
            raise ValueError(
                f"a handler named {name!r} is registered already "
                f"({describe(existing.fn)}); pick another name for {describe(fn)}"
            )
        spec = _inspect_handler(name, fn)
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> HandlerSpec:
        """Return the handler registered under ``name``.

        Raises:
            UnknownHandlerError: no handler has that name.
        """
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(map(repr, sorted(self._specs))) or "none"
            raise UnknownHandlerError(
                f"no handler is registered under {name!r} (known handlers: {known})"
            ) from None

    def names(self) -> tuple[str, ...]:
        """Return the names of the handlers, in the order they were registered."""
        return tuple(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[HandlerSpec]:
        """Iterate over the `HandlerSpec` of each handler, in registration order."""
        return iter(tuple(self._specs.values()))

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"<Registry {list(self._specs)!r}>"


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a handler name must be a str, not {name!r}")
    if not name:
        raise ValueError("a handler name must not be empty")
    check_name("a handler name", name)  # and one that every store can keep


def _unwrap(fn: AnyCallable) -> AnyCallable:
    """Return the function behind ``fn``: looks through partials and callables."""
    while isinstance(fn, functools.partial):
        fn = fn.func  # pyright: ignore[reportUnknownMemberType]  # partial's func is untyped
    if inspect.isroutine(fn) or isinstance(fn, type):
        return fn
    # A callable object: its __call__ carries the annotations and the coroutine flag.
    call: AnyCallable = type(fn).__call__  # pyright: ignore[reportUnknownMemberType]  # any callable
    return call


def _inspect_handler(name: str, fn: AnyCallable) -> HandlerSpec:
    if not callable(fn):
        raise TypeError(f"handler {name!r} must be callable, not {fn!r}")
    label = f"handler {name!r} ({describe(fn)})"
    target = _unwrap(fn)
    if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target):
        kind = (
            "an async generator"
            if inspect.isasyncgenfunction(target)
            else "a generator"
        )
        raise TypeError(
            f"{label} is {kind} function: a handler must be an async function or a "
            "plain function that returns the job's result (calling a generator "
            "function runs none of its code); return a list instead"
        )
    try:
        signature = inspect.signature(fn)
    except ValueError as error:  # some builtins have no signature
        raise TypeError(f"{label}: cannot read its signature: {error}") from error
    positional: list[inspect.Parameter] = []
    for parameter in signature.parameters.values():
        if parameter.kind in _POSITIONAL:
            positional.append(parameter)
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(f"{label} must not take *{parameter.name}")
        elif (
            parameter.kind is inspect.Parameter.KEYWORD_ONLY
            and parameter.default is inspect.Parameter.empty
        ):
            raise TypeError(
                f"{label} must not have the required keyword-only parameter "
                f"{parameter.name!r}: it is called with one positional argument"
            )
    if len(positional) > 1:
        names = ", ".join(p.name for p in positional)
        raise TypeError(
            f"{label} must take exactly zero or one positional parameter "
            f"(the job's arguments), not {len(positional)} ({names})"
        )
    hints = _type_hints(label, target)
    arg_type: object = None
    if positional:
        arg_type = hints.get(positional[0].name)
        if arg_type is object or arg_type is typing.Any:
            arg_type = None  # any JSON value, as without an annotation
    return HandlerSpec(
        name=name,
        fn=fn,
        is_async=inspect.iscoroutinefunction(target),
        takes_argument=bool(positional),
        arg_type=arg_type,
        return_type=hints.get("return"),
    )


def _type_hints(label: str, target: AnyCallable) -> dict[str, object]:
    try:
        return typing.get_type_hints(target)
    except NameError as error:
        raise TypeError(
            f"{label}: cannot resolve its annotations ({error}); the types they "
            "name must be importable at run time, not only under TYPE_CHECKING"
        ) from error
