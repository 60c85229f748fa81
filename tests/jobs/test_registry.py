from __future__ import annotations

import functools
import typing
from typing import assert_type

import attrs
import pytest

from trunner.jobs._errors import JobError, UnknownHandlerError
from trunner.jobs._registry import HandlerSpec, Registry

if typing.TYPE_CHECKING:
    from collections.abc import Callable


@attrs.frozen
class SendEmail:
    to: str
    subject: str


async def send_email(args: SendEmail) -> dict[str, int]:
    del args
    return {}


def resize(args: list[int]) -> None:
    del args


async def tick() -> None:
    pass


def untyped(args: object) -> object:
    return args


untyped.__annotations__ = {}  # as if it had never been annotated


def anything(args: object) -> object:
    return args


def any_json(args: object) -> None:
    del args


any_json.__annotations__ = {"args": typing.Any, "return": None}


async def two(a: int, b: int) -> None:
    del a, b


class Mailer:
    async def __call__(self, args: SendEmail) -> str:
        return args.to


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def bump(self, by: int) -> int:
        self.count += by
        return self.count


def test_handler_decorator_returns_the_function_unchanged() -> None:
    registry = Registry()

    decorated = registry.handler("send_email")(send_email)

    assert decorated is send_email


def test_handler_spec_of_an_async_function() -> None:
    registry = Registry()
    registry.handler("send_email")(send_email)

    spec = registry.get("send_email")

    assert spec == HandlerSpec(
        name="send_email",
        fn=send_email,
        is_async=True,
        takes_argument=True,
        arg_type=SendEmail,
        return_type=dict[str, int],
    )


def test_handler_spec_of_a_sync_function_resolves_string_annotations() -> None:
    registry = Registry()

    spec = registry.register("resize", resize)

    assert spec.is_async is False
    assert spec.arg_type == list[int]
    assert spec.return_type is type(None)


def test_handler_spec_of_a_function_without_argument() -> None:
    registry = Registry()

    spec = registry.register("tick", tick)

    assert (spec.takes_argument, spec.arg_type, spec.is_async) == (False, None, True)
    assert spec.call_args("ignored") == ()


@pytest.mark.parametrize("fn", [untyped, anything, any_json])
def test_handler_spec_takes_any_json_without_a_precise_annotation(
    fn: typing.Callable[[object], object],
) -> None:
    registry = Registry()

    spec = registry.register("h", fn)

    assert spec.takes_argument is True
    assert spec.arg_type is None
    assert spec.call_args({"a": 1}) == ({"a": 1},)


def test_handler_spec_without_return_annotation() -> None:
    registry = Registry()

    spec = registry.register("h", untyped)

    assert spec.return_type is None


def test_handler_spec_looks_through_partials() -> None:
    registry = Registry()

    spec = registry.register("two", functools.partial(two, 1))
    by_keyword = registry.register("two_kw", functools.partial(two, b=2))

    assert (spec.is_async, spec.takes_argument, spec.arg_type) == (True, True, int)
    assert (by_keyword.is_async, by_keyword.arg_type) == (True, int)


def test_handler_spec_of_a_callable_object_and_a_bound_method() -> None:
    registry = Registry()
    counter = Counter()

    mailer = registry.register("mail", Mailer())
    bump = registry.register("bump", counter.bump)

    assert (mailer.is_async, mailer.arg_type, mailer.return_type) == (
        True,
        SendEmail,
        str,
    )
    assert (bump.is_async, bump.arg_type, bump.return_type) == (False, int, int)


@attrs.frozen
class Wrapper:
    payload: int


def test_handler_spec_of_a_class_reads_its_fields() -> None:
    registry = Registry()

    spec = registry.register("make", Wrapper)

    assert (spec.is_async, spec.takes_argument, spec.arg_type) == (False, True, int)


def test_handler_spec_of_a_lambda() -> None:
    registry = Registry()

    spec = registry.register("answer", lambda: 42)

    assert (spec.takes_argument, spec.is_async, spec.return_type) == (
        False,
        False,
        None,
    )


def test_handler_allows_optional_keyword_parameters() -> None:
    def handler(args: int, *, verbose: bool = False, **extra: object) -> None:
        del args, verbose, extra

    registry = Registry()

    spec = registry.register("h", handler)

    assert spec.arg_type is int


def test_handler_with_a_default_positional_argument() -> None:
    def handler(args: int = 3) -> None:
        del args

    spec = Registry().register("h", handler)

    assert (spec.takes_argument, spec.arg_type) == (True, int)


def test_handler_rejects_two_positional_parameters_naming_the_function() -> None:
    registry = Registry()

    with pytest.raises(
        TypeError,
        match=r"handler 'two' \(two\) must take exactly zero or one positional "
        r"parameter .*\(a, b\)",
    ):
        registry.handler("two")(two)

    assert "two" not in registry


def test_handler_rejects_star_args() -> None:
    def handler(*args: int) -> None:
        del args

    with pytest.raises(TypeError, match=r"must not take \*args"):
        Registry().register("h", handler)


def test_handler_rejects_a_required_keyword_only_parameter() -> None:
    def handler(args: int, *, mode: str) -> None:
        del args, mode

    with pytest.raises(TypeError, match="required keyword-only parameter 'mode'"):
        Registry().register("h", handler)


async def async_generator_handler(count: int) -> typing.AsyncIterator[int]:
    for value in range(count):
        yield value


def generator_handler(count: int) -> typing.Iterator[int]:
    yield from range(count)


class GeneratorCall:
    async def __call__(self, count: int) -> typing.AsyncIterator[int]:
        yield count


@pytest.mark.parametrize(
    ("fn", "kind"),
    [
        (async_generator_handler, "an async generator"),
        (generator_handler, "a generator"),
        (functools.partial(generator_handler), "a generator"),
        (GeneratorCall(), "an async generator"),
    ],
)
def test_handler_rejects_generator_functions(
    fn: Callable[[int], object], kind: str
) -> None:
    # Issue 8: accepted, then each job failed with a misleading SerializationError.
    registry = Registry()
    with pytest.raises(TypeError, match=f"is {kind} function: a handler must be"):
        registry.register("gen", fn)
    with pytest.raises(TypeError, match=f"is {kind} function"):
        registry.handler("gen")(fn)
    assert "gen" not in [spec.name for spec in registry]


def test_handler_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match="must be callable, not 42"):
        Registry().register("h", 42)  # type: ignore[arg-type]  # checked at run time


def test_handler_rejects_a_callable_without_signature() -> None:
    with pytest.raises(TypeError, match="cannot read its signature"):
        Registry().register("h", int)


def test_handler_rejects_annotations_that_do_not_resolve() -> None:
    def handler(args: int) -> None:
        del args

    handler.__annotations__ = {"args": "Undefined"}

    with pytest.raises(
        TypeError,
        match=r"cannot resolve its annotations \(name 'Undefined' is not defined\)"
        r".*TYPE_CHECKING",
    ):
        Registry().register("h", handler)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        (3, TypeError, "a handler name must be a str, not 3"),
        (None, TypeError, "a handler name must be a str, not None"),
        ("", ValueError, "a handler name must not be empty"),
    ],
)
def test_handler_name_must_be_a_non_empty_str(
    name: object, error: type[Exception], message: str
) -> None:
    registry = Registry()

    with pytest.raises(error, match=message):
        registry.handler(name)  # type: ignore[arg-type]  # checked at run time
    with pytest.raises(error, match=message):
        registry.register(name, tick)  # type: ignore[arg-type]  # checked at run time


def test_register_twice_under_one_name_is_refused() -> None:
    registry = Registry()
    registry.handler("job")(tick)

    with pytest.raises(
        ValueError,
        match=r"a handler named 'job' is registered already \(tick\); "
        r"pick another name for resize",
    ):
        registry.handler("job")(resize)

    assert registry.get("job").fn is tick


def test_register_the_same_function_again_is_a_no_op() -> None:
    registry = Registry()
    counter = Counter()
    first = registry.register("tick", tick)
    bump = registry.register("bump", counter.bump)

    again = registry.register("tick", tick)

    assert again is first
    assert registry.register("bump", counter.bump) is bump
    assert len(registry) == 2


def test_one_function_under_two_names() -> None:
    registry = Registry()

    registry.handler("a")(tick)
    registry.handler("b")(tick)

    assert registry.names() == ("a", "b")


def test_get_unknown_handler_lists_the_known_names() -> None:
    registry = Registry()
    registry.register("resize", resize)
    registry.register("send_email", send_email)

    with pytest.raises(
        UnknownHandlerError,
        match=r"no handler is registered under 'nope' "
        r"\(known handlers: 'resize', 'send_email'\)",
    ) as info:
        registry.get("nope")

    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, JobError)
    assert info.value.__cause__ is None


def test_get_unknown_handler_in_an_empty_registry() -> None:
    with pytest.raises(UnknownHandlerError, match=r"\(known handlers: none\)"):
        Registry().get("x")


def test_registry_is_a_collection_of_specs_in_registration_order() -> None:
    registry = Registry()
    registry.register("tick", tick)
    registry.register("resize", resize)

    specs = list(registry)

    assert [spec.name for spec in specs] == ["tick", "resize"]
    assert registry.names() == ("tick", "resize")
    assert len(registry) == 2
    assert "tick" in registry
    assert "nope" not in registry
    assert 3 not in registry
    assert repr(registry) == "<Registry ['tick', 'resize']>"


def test_registering_while_iterating_is_safe() -> None:
    registry = Registry()
    registry.register("tick", tick)

    for spec in registry:
        registry.register(spec.name + "2", resize)

    assert registry.names() == ("tick", "tick2")


async def test_decorated_functions_keep_their_signature() -> None:
    registry = Registry()

    @registry.handler("add")
    def add(x: int) -> int:
        return x + 1

    @registry.handler("fetch")
    async def fetch(url: str) -> bytes:
        return url.encode()

    assert assert_type(add(1), int) == 2
    assert assert_type(await fetch("x"), bytes) == b"x"
