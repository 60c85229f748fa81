from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import re
import typing
import uuid
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trunner import Priority
from trunner.jobs._errors import JobError, SerializationError
from trunner.jobs._job import JobRecord, JobState
from trunner.jobs._registry import HandlerSpec, Registry
from trunner.jobs._serialize import JsonSerializer, Serializer

if TYPE_CHECKING:
    import cattrs

UTC = dt.UTC
NOON = dt.datetime(2024, 5, 6, 12, 0, tzinfo=UTC)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mood(enum.StrEnum):
    HAPPY = "happy"
    SAD = "sad"


class Celsius(float):
    pass


@attrs.frozen
class Address:
    street: str
    number: int


@attrs.frozen
class SendEmail:
    to: str
    subject: str
    when: dt.datetime
    color: Color = Color.RED
    cc: tuple[str, ...] = ()
    address: Address | None = None
    scores: dict[str, float] = attrs.field(factory=dict[str, float])


@dataclasses.dataclass(frozen=True)
class Report:
    title: str
    day: dt.date
    levels: list[Level]
    ratio: float = 0.5


@attrs.frozen
class Flags:
    on: bool
    nothing: None = None
    mood: Mood = Mood.HAPPY
    temperature: Celsius = attrs.field(default=Celsius(20.0))


@attrs.frozen
class Sighting:
    where: str


@attrs.frozen
class Nest:
    children: list[Nest]
    label: str


@attrs.frozen
class Cat:
    meows: int


@attrs.frozen
class Dog:
    barks: int


class Plain:
    def __init__(self, x: int) -> None:
        self.x = x


def spec_for(annotation: object, *, name: str = "h") -> HandlerSpec:
    """A handler spec whose parameter is annotated with ``annotation``."""

    def handler(args: object) -> None:
        del args

    handler.__annotations__ = {"args": annotation}
    return Registry().register(name, handler)


def no_arg_spec() -> HandlerSpec:
    async def handler() -> None:
        pass

    return Registry().register("tick", handler)


@pytest.fixture
def serializer() -> JsonSerializer:
    return JsonSerializer()


EMAIL = SendEmail(
    to="a@example.com",
    subject="hi",
    when=NOON,
    color=Color.GREEN,
    cc=("b@example.com",),
    address=Address("Main St", 5),
    scores={"x": 1.5},
)
EMAIL_JSON: dict[str, object] = {
    "to": "a@example.com",
    "subject": "hi",
    "when": "2024-05-06T12:00:00+00:00",
    "color": "green",
    "cc": ["b@example.com"],
    "address": {"street": "Main St", "number": 5},
    "scores": {"x": 1.5},
}


def test_json_serializer_is_a_serializer() -> None:
    serializer: Serializer = JsonSerializer()

    assert serializer.load_json("[1]") == [1]


# --- dump_args / load_args: round trips ---------------------------------------------


def test_dump_args_of_an_attrs_instance(serializer: JsonSerializer) -> None:
    spec = spec_for(SendEmail)

    text = serializer.dump_args(spec, EMAIL)

    assert json.loads(text) == EMAIL_JSON
    assert " " not in text.replace("Main St", "")  # compact
    assert serializer.load_args(spec, text) == EMAIL


def test_dump_args_accepts_the_json_form(serializer: JsonSerializer) -> None:
    spec = spec_for(SendEmail)

    text = serializer.dump_args(spec, EMAIL_JSON)

    assert serializer.load_args(spec, text) == EMAIL
    assert text == serializer.dump_args(spec, EMAIL)


def test_dump_args_fills_defaults_when_loading(serializer: JsonSerializer) -> None:
    spec = spec_for(SendEmail)

    text = serializer.dump_args(
        spec, {"to": "x", "subject": "s", "when": "2024-05-06T12:00:00Z"}
    )

    assert serializer.load_args(spec, text) == SendEmail("x", "s", NOON)


def test_dump_args_of_a_dataclass_with_dates_and_int_enums(
    serializer: JsonSerializer,
) -> None:
    spec = spec_for(Report)
    report = Report("r", dt.date(2024, 1, 2), [Level.HIGH, Level.LOW], ratio=1)

    text = serializer.dump_args(spec, report)

    assert json.loads(text) == {
        "title": "r",
        "day": "2024-01-02",
        "levels": [2, 1],
        "ratio": 1,
    }
    assert serializer.load_args(spec, text) == Report(
        "r", dt.date(2024, 1, 2), [Level.HIGH, Level.LOW], 1.0
    )


def test_dump_args_of_bools_none_str_enums_and_float_subclasses(
    serializer: JsonSerializer,
) -> None:
    spec = spec_for(Flags)

    text = serializer.dump_args(spec, {"on": True, "mood": "sad", "temperature": 3})

    loaded = serializer.load_args(spec, text)
    assert loaded == Flags(on=True, mood=Mood.SAD, temperature=Celsius(3.0))
    assert isinstance(loaded, Flags)
    assert isinstance(loaded.temperature, Celsius)


def test_dump_args_of_a_recursive_class(serializer: JsonSerializer) -> None:
    spec = spec_for(Nest)
    tree = Nest([Nest([], "leaf")], "root")

    text = serializer.dump_args(spec, tree)

    assert serializer.load_args(spec, text) == tree


@pytest.mark.parametrize(
    ("annotation", "value", "loaded"),
    [
        (int, 5, 5),
        (float, 5, 5.0),
        (str, "x", "x"),
        (bool, False, False),
        (type(None), None, None),
        (int | None, None, None),
        (int | str, "a", "a"),
        (typing.Literal["a", "b"], "b", "b"),
        (list[int], (1, 2), [1, 2]),
        (tuple[int, str], [1, "a"], (1, "a")),
        (tuple[int, ...], [1, 2], (1, 2)),
        (set[int], {3}, {3}),
        (frozenset[str], frozenset({"a"}), frozenset({"a"})),
        (dict[str, list[int]], {"a": [1]}, {"a": [1]}),
        (dict[int, str], {1: "a", 20: "b"}, {1: "a", 20: "b"}),
        (dict[Level, str], {Level.LOW: "a"}, {Level.LOW: "a"}),
        (dict[Color, int], {Color.RED: 1}, {Color.RED: 1}),
        (dict[bool, int], {True: 1, False: 0}, {True: 1, False: 0}),
        (dict[float, int], {1.5: 1}, {1.5: 1}),
        (typing.Mapping[int, int], {1: 2}, {1: 2}),
        (dict[dt.date, int], {dt.date(2024, 1, 1): 1}, {dt.date(2024, 1, 1): 1}),
        (dt.datetime, NOON, NOON),
        (bytes, b"\x00\xff", b"\x00\xff"),
        (Color, Color.GREEN, Color.GREEN),
        (Color, "green", Color.GREEN),
        (Level, 2, Level.HIGH),
        (list[Address], [Address("a", 1)], [Address("a", 1)]),
        (Cat | Dog, Dog(3), Dog(3)),
        (Cat | Dog, {"meows": 2}, Cat(2)),
        (Address | None, None, None),
        (dict, {"a": [1, None]}, {"a": [1, None]}),
        (list, (1, "a"), [1, "a"]),
        (list[object], [{"a": 1}], [{"a": 1}]),
        (typing.Sequence[int], [1], [1]),
        (typing.AbstractSet[int], [1], frozenset({1})),
    ],
)
def test_round_trip(
    serializer: JsonSerializer, annotation: object, value: object, loaded: object
) -> None:
    spec = spec_for(annotation)

    text = serializer.dump_args(spec, value)

    assert serializer.load_args(spec, text) == loaded


def test_untyped_handler_takes_any_json_and_converts_known_types(
    serializer: JsonSerializer,
) -> None:
    spec = spec_for(object)
    assert spec.arg_type is None
    value = {"a": (1, 2), "b": {3}, "when": NOON, "email": Address("s", 1), "n": None}

    text = serializer.dump_args(spec, value)

    assert serializer.load_args(spec, text) == {
        "a": [1, 2],
        "b": [3],
        "when": "2024-05-06T12:00:00+00:00",
        "email": {"street": "s", "number": 1},
        "n": None,
    }


def test_without_spec_args_need_only_serialise(serializer: JsonSerializer) -> None:
    text = serializer.dump_args(None, EMAIL)

    assert json.loads(text) == EMAIL_JSON
    assert serializer.load_args(None, text) == EMAIL_JSON
    assert serializer.dump_args(None, {1: "a"}) == '{"1":"a"}'


def test_handler_without_argument_takes_none(serializer: JsonSerializer) -> None:
    spec = no_arg_spec()

    text = serializer.dump_args(spec, None)

    assert text == "null"
    assert serializer.load_args(spec, text) is None
    assert serializer.load_args(spec, '{"ignored": 1}') is None
    assert serializer.load_args(spec, "not even JSON") is None


def test_handler_without_argument_refuses_args(serializer: JsonSerializer) -> None:
    with pytest.raises(
        SerializationError,
        match=r"handler 'tick' takes no argument; pass None as args, not 3 \(int\)",
    ):
        serializer.dump_args(no_arg_spec(), 3)


def test_configure_registers_hooks_on_both_converters() -> None:
    configured: list[cattrs.Converter] = []

    def configure(converter: cattrs.Converter) -> None:
        configured.append(converter)
        converter.register_unstructure_hook(decimal.Decimal, str)
        converter.register_structure_hook(
            decimal.Decimal, lambda v, _: decimal.Decimal(v)
        )
        converter.register_unstructure_hook(uuid.UUID, str)
        converter.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(v))

    serializer = JsonSerializer(configure=configure)
    spec = spec_for(dict[str, decimal.Decimal])
    key = uuid.UUID(int=7)

    text = serializer.dump_args(spec, {"price": decimal.Decimal("1.10")})

    assert len(configured) == 2
    assert text == '{"price":"1.10"}'
    assert serializer.load_args(spec, text) == {"price": decimal.Decimal("1.10")}
    assert (
        serializer.load_args(spec_for(uuid.UUID), serializer.dump_args(None, key))
        == key
    )


# --- dump_args: refusals ------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "problem"),
    [
        (SendEmail, 5, r"expected a JSON object for SendEmail, got 5 \(int\) @ \$"),
        (
            SendEmail,
            {"to": "x"},
            r"required field missing @ \$\.subject; required field missing @ \$\.when",
        ),
        (
            SendEmail,
            {**EMAIL_JSON, "bcc": "x", "acc": 1},
            r"unknown fields acc, bcc @ \$",
        ),
        (
            SendEmail,
            {**EMAIL_JSON, "address": {"street": "s", "number": "5"}},
            r"expected an integer, got '5' \(str\) @ \$\.address\.number",
        ),
        (
            SendEmail,
            {**EMAIL_JSON, "when": "soon"},
            r"Invalid isoformat string: 'soon' @ \$\.when",
        ),
        (
            SendEmail,
            {**EMAIL_JSON, "color": "blue"},
            r"'blue' is not a valid Color @ \$\.color",
        ),
        (
            SendEmail,
            {**EMAIL_JSON, "cc": "x"},
            r"expected a JSON array for tuple\[str, \.\.\.\], got 'x' \(str\) @ \$\.cc",
        ),
        (list[str], {"a": 1}, r"expected a JSON array for list\[str\], got \{'a': 1\}"),
        (list[int], 5, r"expected a JSON array for list\[int\], got 5 \(int\)"),
        (tuple[str, str], "ab", r"expected a JSON array for tuple\[str, str\]"),
        (tuple[int, str], [1, 2], r"expected a string, got 2 \(int\) @ \$\[1\]"),
        (
            tuple[int, str],
            [1, "a", 3],
            r"expected 2 items for tuple\[int, str\], got 3",
        ),
        (set[int], ["a"], r"expected an integer, got 'a' \(str\) @ \$\[0\]"),
        (str, 5, r"expected a string, got 5 \(int\) @ \$"),
        (str, {"a": 1}, r"expected a string, got \{'a': 1\} \(dict\)"),
        (int, "5", r"expected an integer, got '5' \(str\)"),
        (int, True, r"expected an integer, got True \(bool\)"),
        (int, 2.5, r"expected an integer, got 2\.5 \(float\)"),
        (float, "1", r"expected a number, got '1' \(str\)"),
        (float, False, r"expected a number, got False \(bool\)"),
        (bool, 1, r"expected true or false, got 1 \(int\)"),
        (type(None), 0, r"expected null, got 0 \(int\)"),
        (int | None, "x", r"expected an integer, got 'x' \(str\)"),
        (list[int], [1, "2"], r"expected an integer, got '2' \(str\) @ \$\[1\]"),
        (tuple[int, int], [1], r"expected 2 items for tuple\[int, int\], got 1"),
        (
            dict[int, str],
            {"x": "a"},
            r"expected an integer, got 'x' \(str\) @ \$\['x'\]",
        ),
        (
            dict[int, str],
            {1.5: "a"},
            r"expected an integer, got 1\.5 \(float\) @ \$\['1\.5'\]",
        ),
        (dict[int, str], {1: 2}, r"expected a string, got 2 \(int\) @ \$\['1'\]"),
        (dict[int, str], [1], r"expected a JSON object, got \[1\] \(list\)"),
        (dict[Level, str], {3: "a"}, r"3 is not a valid Level @ \$\['3'\]"),
        (dict[str, int], {1: 1}, r"expected a string, got 1 \(int\)"),
        (typing.Literal["a"], "b", r"b not in literal"),
        (Cat | Dog, {"purrs": 1}, r"Couldn't disambiguate"),
    ],
)
def test_dump_args_refuses_args_that_do_not_match(
    serializer: JsonSerializer, annotation: object, value: object, problem: str
) -> None:
    spec = spec_for(annotation, name="send_email")

    with pytest.raises(
        SerializationError,
        match="arguments for handler 'send_email' do not match its annotation ",
    ) as info:
        serializer.dump_args(spec, value)

    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, JobError)
    assert info.value.__cause__ is not None
    message = str(info.value)
    assert re.search(problem, message), message


def test_dump_args_names_the_annotation(serializer: JsonSerializer) -> None:
    with pytest.raises(SerializationError, match=r"its annotation dict\[int, str\]: "):
        serializer.dump_args(spec_for(dict[int, str]), 3)
    with pytest.raises(SerializationError, match=r"its annotation int \| None: "):
        serializer.dump_args(spec_for(int | None), "x")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (float("nan"), "Out of range float values are not JSON compliant"),
        ({"x": float("inf")}, "Out of range float values are not JSON compliant"),
        (object(), "is not JSON serializable"),
        ({"a": {1, object()}}, "is not JSON serializable"),
        ({Plain(1): "x"}, "keys must be str, int, float, bool or None"),
    ],
)
def test_dump_args_refuses_what_json_cannot_hold(
    serializer: JsonSerializer, value: object, problem: str
) -> None:
    with pytest.raises(
        SerializationError, match=f"arguments do not serialise to JSON: .*{problem}"
    ):
        serializer.dump_args(None, value)
    with pytest.raises(
        SerializationError,
        match=f"arguments for handler 'h' do not serialise to JSON: .*{problem}",
    ):
        serializer.dump_args(spec_for(object), value)


def test_dump_args_refuses_a_circular_value(serializer: JsonSerializer) -> None:
    loop: list[object] = []
    loop.append(loop)

    with pytest.raises(SerializationError, match="Circular reference detected"):
        serializer.dump_args(None, loop)


def test_dump_args_refuses_an_attrs_instance_with_a_wrong_field(
    serializer: JsonSerializer,
) -> None:
    broken = SendEmail("a", "b", when="not a datetime")  # type: ignore[arg-type]  # wrong on purpose

    with pytest.raises(
        SerializationError,
        match="do not serialise to JSON: 'str' object has no attribute 'isoformat'",
    ):
        serializer.dump_args(spec_for(SendEmail), broken)


def test_dump_args_refuses_an_attrs_instance_whose_field_does_not_check(
    serializer: JsonSerializer,
) -> None:
    broken = Address("Main St", number="5")  # type: ignore[arg-type]  # wrong on purpose

    with pytest.raises(
        SerializationError, match=r"expected an integer, got '5' \(str\) @ \$\.number"
    ):
        serializer.dump_args(spec_for(Address), broken)


def test_dump_args_refuses_an_unsupported_annotation(
    serializer: JsonSerializer,
) -> None:
    spec = spec_for(Plain, name="plain")

    with pytest.raises(
        SerializationError,
        match=r"handler 'plain': its parameter's annotation Plain is not supported "
        r".*use JSON types, attrs classes",
    ):
        serializer.dump_args(spec, {"x": 1})
    with pytest.raises(
        SerializationError,
        match="handler 'plain': its parameter's annotation Plain is not supported",
    ):
        serializer.load_args(spec, '{"x": 1}')


def test_dump_args_reports_an_error_without_message() -> None:
    class Opaque:
        pass

    def configure(converter: cattrs.Converter) -> None:
        def structure(value: object, cl: object) -> Opaque:
            raise ValueError

        converter.register_structure_hook(Opaque, structure)

    serializer = JsonSerializer(configure=configure)

    with pytest.raises(
        SerializationError, match=r"annotation .*Opaque: ValueError @ \$"
    ):
        serializer.dump_args(spec_for(Opaque), 1)


def test_refused_submission_reuses_cached_hooks(serializer: JsonSerializer) -> None:
    spec = spec_for(Address)

    for _ in range(3):
        with pytest.raises(SerializationError):
            serializer.dump_args(spec, {"street": 1, "number": 1})

    assert serializer.dump_args(spec, Address("s", 1)) == '{"street":"s","number":1}'


# --- load_args ----------------------------------------------------------------------


def test_load_args_ignores_unknown_fields(serializer: JsonSerializer) -> None:
    spec = spec_for(Address)

    loaded = serializer.load_args(
        spec, '{"street": "s", "number": 1, "added_later": true}'
    )

    assert loaded == Address("s", 1)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{", "Expecting property name"),
        ("NaN", "NaN is not a JSON value"),
        ('{"street": "s"}', r"required field missing @ \$\.number"),
        ("[]", r"expected a JSON object for Address, got \[\] \(list\)"),
    ],
)
def test_load_args_errors_name_the_job(
    serializer: JsonSerializer, text: str, problem: str
) -> None:
    spec = spec_for(Address, name="mail")

    with pytest.raises(
        SerializationError,
        match=f"stored arguments of job 'job-1' for handler 'mail' cannot be "
        f"decoded: .*{problem}",
    ):
        serializer.load_args(spec, text, job_id="job-1")


def test_load_args_error_without_job_or_spec(serializer: JsonSerializer) -> None:
    with pytest.raises(
        SerializationError, match="stored arguments of a job cannot be decoded: "
    ):
        serializer.load_args(None, "nope")


def test_prepare_call_decodes_the_record(serializer: JsonSerializer) -> None:
    spec = spec_for(Address)
    record = JobRecord(
        id="j",
        handler="h",
        args='{"street":"s","number":1}',
        state=JobState.RUNNING,
        priority=Priority.USER_VISIBLE.value,
        attempts=1,
        max_attempts=3,
        created_at=NOON,
        run_at=NOON,
    )

    fn, args = serializer.prepare_call(spec, record)

    assert fn is spec.fn
    assert args == (Address("s", 1),)
    assert serializer.prepare_call(no_arg_spec(), record)[1] == ()
    with pytest.raises(SerializationError, match="stored arguments of job 'j'"):
        serializer.prepare_call(spec, attrs.evolve(record, args="[]"))


# --- results and plain JSON ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        ({"a": [1, 2.5, "x", True]}, '{"a":[1,2.5,"x",true]}'),
        (Address("s", 1), '{"street":"s","number":1}'),
        (
            [Address("s", 1), NOON],
            '[{"street":"s","number":1},"2024-05-06T12:00:00+00:00"]',
        ),
        (Color.RED, '"red"'),
        ((1, 2), "[1,2]"),
        ("é\u0000", '"\\u00e9\\u0000"'),
    ],
)
def test_dump_result(serializer: JsonSerializer, value: object, text: str) -> None:
    assert serializer.dump_result(value) == text


@pytest.mark.parametrize("value", [object(), float("nan"), {"x": {1, 2, object()}}])
def test_dump_result_refuses_what_json_cannot_hold(
    serializer: JsonSerializer, value: object
) -> None:
    with pytest.raises(
        SerializationError, match=r"the result .* does not serialise to JSON: "
    ):
        serializer.dump_result(value)


def test_dump_result_message_is_bounded(serializer: JsonSerializer) -> None:
    with pytest.raises(SerializationError) as info:
        serializer.dump_result({str(i): object() for i in range(1000)})

    assert len(str(info.value)) < 300


def test_load_json(serializer: JsonSerializer) -> None:
    assert serializer.load_json('{"a": [1, null]}') == {"a": [1, None]}
    with pytest.raises(SerializationError, match="not valid JSON: "):
        serializer.load_json("{")
    with pytest.raises(SerializationError, match="Infinity is not a JSON value"):
        serializer.load_json("[Infinity]")


# --- properties ---------------------------------------------------------------------


@attrs.frozen
class Leaf:
    name: str
    size: int
    ratio: float
    flag: bool
    color: Color
    level: Level


@attrs.frozen
class Tree:
    leaves: list[Leaf]
    when: dt.datetime
    tags: tuple[str, ...]
    index: dict[int, str]
    parent: Tree | None = None
    note: str | None = None


finite_floats = st.floats(allow_nan=False, allow_infinity=False)
leaves = st.builds(
    Leaf,
    name=st.text(),
    size=st.integers(),
    ratio=finite_floats,
    flag=st.booleans(),
    color=st.sampled_from(Color),
    level=st.sampled_from(Level),
)
datetimes = st.datetimes(
    # Naive bounds: hypothesis adds the timezone.
    min_value=dt.datetime(1, 1, 2),
    max_value=dt.datetime(9999, 12, 30),
    timezones=st.just(UTC),
)
trees = st.recursive(
    st.builds(
        Tree,
        leaves=st.lists(leaves, max_size=3),
        when=datetimes,
        tags=st.lists(st.text(max_size=5), max_size=3).map(tuple),
        index=st.dictionaries(st.integers(), st.text(max_size=5), max_size=3),
        note=st.none() | st.text(max_size=5),
    ),
    lambda children: st.builds(
        Tree,
        leaves=st.lists(leaves, max_size=2),
        when=datetimes,
        tags=st.just(()),
        index=st.just({}),
        parent=children,
    ),
    max_leaves=4,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite_floats | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
SERIALIZER = JsonSerializer()


@given(trees)
def test_property_attrs_round_trip(tree: Tree) -> None:
    spec = spec_for(Tree)

    text = SERIALIZER.dump_args(spec, tree)

    assert SERIALIZER.load_args(spec, text) == tree
    assert SERIALIZER.dump_args(spec, json.loads(text)) == text
    assert SERIALIZER.dump_args(None, tree) == text
    assert SERIALIZER.dump_result(tree) == text


@given(json_values)
def test_property_json_values_round_trip_untyped(value: object) -> None:
    text = SERIALIZER.dump_args(None, value)

    assert SERIALIZER.load_args(spec_for(object), text) == value
    assert SERIALIZER.load_json(text) == value
    assert json.loads(text) == value


@given(st.lists(leaves, max_size=5))
def test_property_list_of_attrs_round_trip(items: list[Leaf]) -> None:
    spec = spec_for(list[Leaf])

    text = SERIALIZER.dump_args(spec, items)

    assert SERIALIZER.load_args(spec, text) == items


# Issue 8: a plain dict for an attrs class is stored as the class writes itself,
# and naive datetimes are refused (workers on other machines read them).


def test_json_form_is_stored_in_its_structured_form(
    serializer: JsonSerializer,
) -> None:
    spec = spec_for(SendEmail)
    given_form = {"to": "x", "subject": "s", "when": "2024-05-06T12:00:00Z"}

    text, value = serializer.dump_args_value(spec, given_form)

    assert text == serializer.dump_args(spec, SendEmail("x", "s", NOON))
    assert value == json.loads(text)
    assert given_form == {"to": "x", "subject": "s", "when": "2024-05-06T12:00:00Z"}


def test_json_form_that_does_not_structure_is_refused(
    serializer: JsonSerializer,
) -> None:
    with pytest.raises(SerializationError, match="SendEmail"):
        serializer.dump_args(spec_for(SendEmail), {"to": "x", "subject": "s"})


@pytest.mark.parametrize(
    "args",
    [
        SendEmail("x", "s", dt.datetime(2024, 5, 6, 12, 0)),
        {"to": "x", "subject": "s", "when": "2024-05-06T12:00:00"},
    ],
    ids=["instance", "json-form"],
)
def test_naive_datetimes_are_refused(serializer: JsonSerializer, args: object) -> None:
    with pytest.raises(SerializationError, match="has no time zone"):
        serializer.dump_args(spec_for(SendEmail), args)


def test_naive_datetime_in_untyped_args_is_refused(serializer: JsonSerializer) -> None:
    with pytest.raises(SerializationError, match="has no time zone"):
        serializer.dump_args(None, [dt.datetime(2024, 5, 6)])


def test_aware_datetimes_in_other_zones_keep_their_offset(
    serializer: JsonSerializer,
) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    email = SendEmail("x", "s", dt.datetime(2024, 5, 6, 13, 0, tzinfo=paris))

    text = serializer.dump_args(spec_for(SendEmail), email)

    assert serializer.load_args(spec_for(SendEmail), text) == email
