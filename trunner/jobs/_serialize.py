"""JSON payloads: job arguments checked against handler annotations, and results.

Arguments go through the serializer when a job is submitted, so bad input fails
there and then, with nothing stored; the worker decodes the same text back into
the type that the handler's parameter is annotated with. Nothing is pickled.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime
import json
import reprlib
import typing
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, final

import attrs
import cattrs
from cattrs.errors import (
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.preconf.json import make_converter

from ._errors import SerializationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._util import AnyCallable
    from ._job import JobRecord
    from ._registry import HandlerSpec

_Hook: TypeAlias = typing.Callable[[object, object], object]
_Unhook: TypeAlias = typing.Callable[[object], object]

#: Types that the JSON encoder takes as they are (dicts and lists if their
#: contents are JSON values, which the encoder finds out).
_NATIVE: Final[frozenset[type]] = frozenset(
    {dict, list, str, int, float, bool, type(None)}
)
_MAPPINGS: Final[frozenset[object]] = frozenset(
    {dict, collections.abc.Mapping, collections.abc.MutableMapping}
)
_STR_KEYS: Final[tuple[object, ...]] = (str, typing.Any, object)
#: The collections that a JSON array becomes, and what each is built as.
_COLLECTIONS: Final[dict[object, typing.Callable[[list[object]], object]]] = {
    list: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    collections.abc.Set: frozenset,
    collections.abc.MutableSet: set,
}

_repr: Final = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40


def _reject_constant(token: str) -> object:
    raise ValueError(f"{token} is not a JSON value")


#: Compact, strict JSON: no NaN or Infinity either way. Reusing one encoder
#: saves ``json.dumps`` building a new one for each call with options.
_ENCODER: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
#: What the encoder and cattrs raise on values they cannot convert.
_ENCODE_ERRORS: Final = (TypeError, ValueError, AttributeError, RecursionError)


class Serializer(Protocol):
    """How a `JobManager` turns job arguments and results into JSON text, and back.

    `JsonSerializer` is the default. Whatever a serializer does, the text it
    produces must be JSON: stores keep it as is and `JobInfo` shows it parsed.
    """

    def dump_args(self, spec: HandlerSpec | None, args: object) -> str:
        """Return ``args`` as JSON text, checked against the handler's annotation.

        ``spec`` is None when no registry is available: ``args`` then need only
        be JSON-serialisable.

        Raises:
            SerializationError: ``args`` do not serialise, or do not match.
        """
        ...

    def load_args(
        self, spec: HandlerSpec | None, text: str, *, job_id: str | None = None
    ) -> object:
        """Decode stored arguments into the value that the handler takes.

        Raises:
            SerializationError: the text cannot be decoded into that type.
        """
        ...

    def dump_result(self, value: object) -> str:
        """Return a handler's return value as JSON text.

        Raises:
            SerializationError: the value does not serialise.
        """
        ...

    def load_json(self, text: str) -> object:
        """Parse JSON text into its JSON value (dicts, lists, str, numbers...).

        Raises:
            SerializationError: the text is not JSON.
        """
        ...


@final
@attrs.define(eq=False)
class JsonSerializer:
    """The default `Serializer`: JSON text through a ``cattrs`` converter.

    A handler's argument is converted according to the annotation of its
    parameter: attrs classes and dataclasses become JSON objects, enums their
    values, `datetime.datetime` and `datetime.date` ISO 8601 strings, `bytes`
    base85 strings, tuples and sets lists; lists, dicts, `typing.Optional`,
    unions and literals of those work as ``cattrs`` makes them work. A job's
    arguments may be an instance of that type or its JSON form (as a web front
    end receives it); either way they must structure back into the annotated
    type, strictly: a string is not an int, an unknown field is an error. When
    a job is decoded for a run, unknown fields are ignored instead, so that a
    worker still runs jobs that a newer version of the code submitted.

    JSON objects have string keys, so a mapping with keys of another type (an
    int, an enum) is read back by parsing each key as JSON.

    Args:
        configure: called with each of the serializer's two converters (one
            checks arguments, one decodes them) to register hooks for more
            types (see ``cattrs.Converter.register_structure_hook``).
    """

    _configure: Callable[[cattrs.Converter], None] | None = attrs.field(
        default=None, alias="configure"
    )
    #: Decodes stored arguments (unknown fields are ignored) and unstructures.
    _loader: cattrs.Converter = attrs.field(init=False, repr=False)
    #: Checks arguments at submission (unknown fields are errors).
    _checker: cattrs.Converter = attrs.field(init=False, repr=False)
    _unstructure_hooks: dict[type, _Unhook] = attrs.field(
        init=False, repr=False, factory=dict[type, _Unhook]
    )
    #: Structure hooks by ``id()`` of the annotation (which an entry keeps alive):
    #: hashing a generic alias costs more, and some annotations do not hash.
    _check_hooks: dict[int, tuple[object, _Hook]] = attrs.field(
        init=False, repr=False, factory=dict[int, tuple[object, _Hook]]
    )
    _load_hooks: dict[int, tuple[object, _Hook]] = attrs.field(
        init=False, repr=False, factory=dict[int, tuple[object, _Hook]]
    )

    def __attrs_post_init__(self) -> None:
        self._loader = self._make_converter(forbid_extra_keys=False)
        self._checker = self._make_converter(forbid_extra_keys=True)

    def _make_converter(self, *, forbid_extra_keys: bool) -> cattrs.Converter:
        converter = make_converter(
            detailed_validation=True, forbid_extra_keys=forbid_extra_keys
        )
        _configure_strict(converter)
        _refuse_naive_datetimes(converter, structure=forbid_extra_keys)
        if self._configure is not None:
            self._configure(converter)
        return converter

    def dump_args(self, spec: HandlerSpec | None, args: object) -> str:
        """Return ``args`` as compact JSON text, checked against ``spec``.

        See `dump_args_value`, which also returns the JSON value.
        """
        return self.dump_args_value(spec, args)[0]

    def dump_args_value(
        self, spec: HandlerSpec | None, args: object
    ) -> tuple[str, object]:
        """Return ``args`` as compact JSON text and as a JSON value, checked.

        The JSON value is a fresh object (never ``args`` itself), so that it
        can be handed out without sharing the caller's mutable data.

        Args:
            spec: the handler the arguments are for, or None when no registry
                is available: the arguments then need only serialise.
            args: an instance of the handler's argument type, or its JSON form;
                None for a handler that takes no argument.

        Raises:
            SerializationError: the arguments do not serialise to JSON (NaN and
                infinities included), or do not structure into the type of the
                handler's parameter; or the handler takes no argument and
                ``args`` is not None.
        """
        if spec is not None and not spec.takes_argument:
            if args is not None:
                raise SerializationError(
                    f"handler {spec.name!r} takes no argument; pass None as args, "
                    f"not {_describe(args)}"
                )
            return "null", None
        try:
            plain, text = self._encode(args)
        except _ENCODE_ERRORS as error:
            what = (
                "arguments" if spec is None else f"arguments for handler {spec.name!r}"
            )
            raise SerializationError(
                f"{what} do not serialise to JSON: {error}"
            ) from error
        if spec is not None and spec.arg_type is not None:
            hook = self._hook(self._checker, self._check_hooks, spec)
            try:
                # Checking the JSON value before encoding is as good as checking the
                # parsed text, and cheaper: JSON only adds lists for tuples (which
                # structure alike) and string keys (which loading parses back).
                structured = hook(plain, spec.arg_type)
                if structured is not plain and type(args) in _NATIVE:
                    # The JSON form of an attrs class (a plain dict, say) is
                    # stored as that class writes itself: defaults filled in,
                    # values in their canonical form.
                    plain, text = self._encode(structured)
            except Exception as error:  # any hook may fail: reported
                raise SerializationError(
                    f"arguments for handler {spec.name!r} do not match its "
                    f"annotation {_type_name(spec.arg_type)}: {_explain(error)}"
                ) from error
        if plain is args and isinstance(args, (dict, list)):
            plain = _DECODER.decode(text)  # the caller's own object: not shared
        return text, plain

    def load_args(
        self, spec: HandlerSpec | None, text: str, *, job_id: str | None = None
    ) -> object:
        """Decode stored arguments into the value that the handler takes.

        Args:
            spec: the handler that will run, or None for the plain JSON value.
            text: the arguments as `JsonSerializer.dump_args` stored them.
            job_id: the job's id, for the error message.

        Returns:
            An instance of the handler's argument type; the JSON value if its
            parameter has no annotation; None if it takes no argument (the text
            is not even read then).

        Raises:
            SerializationError: the text is not JSON or does not structure into
                the argument type.
        """
        if spec is not None and not spec.takes_argument:
            return None
        try:
            value = _DECODER.decode(text)
            if spec is None or spec.arg_type is None:
                return value
            hook = self._hook(self._loader, self._load_hooks, spec)
            return hook(value, spec.arg_type)
        except Exception as error:  # any hook may fail: reported
            whose = "a job" if job_id is None else f"job {job_id!r}"
            handler = "" if spec is None else f" for handler {spec.name!r}"
            raise SerializationError(
                f"stored arguments of {whose}{handler} cannot be decoded: "
                f"{_explain(error)}"
            ) from error

    def prepare_call(
        self, spec: HandlerSpec, record: JobRecord
    ) -> tuple[AnyCallable, tuple[object, ...]]:
        """Return the handler's function and the arguments to call it with.

        Decodes ``record.args`` with `JsonSerializer.load_args`.

        Raises:
            SerializationError: the stored arguments cannot be decoded.
        """
        value = self.load_args(spec, record.args, job_id=record.id)
        return spec.fn, spec.call_args(value)

    def dump_result(self, value: object) -> str:
        """Return a handler's return value as compact JSON text.

        The value is converted by its own type, as `JsonSerializer.dump_args` converts
        arguments: an attrs instance becomes a JSON object, and so on.

        Raises:
            SerializationError: the value does not serialise to JSON.
        """
        try:
            return self._encode(value)[1]
        except _ENCODE_ERRORS as error:
            raise SerializationError(
                f"the result {_describe(value)} does not serialise to JSON: {error}"
            ) from error

    def load_json(self, text: str) -> object:
        """Parse JSON text (NaN and infinities are refused).

        Raises:
            SerializationError: the text is not JSON.
        """
        try:
            return _DECODER.decode(text)
        except ValueError as error:
            raise SerializationError(f"not valid JSON: {error}") from error

    def _encode(self, value: object) -> tuple[object, str]:
        """Return ``value`` as a JSON value (unstructured by its type) and as text."""
        cls = type(value)
        if cls in _NATIVE:
            try:
                return value, _ENCODER.encode(value)
            except TypeError:
                pass  # something inside needs cattrs: a datetime, an attrs instance...
        hook = self._unstructure_hooks.get(cls)
        if hook is None:
            hook = self._loader.get_unstructure_hook(cls)
            self._unstructure_hooks[cls] = hook
        plain = hook(value)
        return plain, _ENCODER.encode(plain)

    def _hook(
        self,
        converter: cattrs.Converter,
        cache: dict[int, tuple[object, _Hook]],
        spec: HandlerSpec,
    ) -> _Hook:
        tp = spec.arg_type
        entry = cache.get(id(tp))
        if entry is not None and entry[0] is tp:
            return entry[1]
        try:
            hook: _Hook = converter.get_structure_hook(tp)
        except Exception as error:  # cattrs raises many kinds
            raise SerializationError(
                f"handler {spec.name!r}: its parameter's annotation "
                f"{_type_name(tp)} is not supported ({error}); use JSON types, "
                "attrs classes, dataclasses, enums or datetimes"
            ) from error
        cache[id(tp)] = (tp, hook)
        return hook


# --- strict hooks ------------------------------------------------------------------


def _describe(value: object) -> str:
    return f"{_repr.repr(value)} ({type(value).__name__})"


def _type_name(tp: object) -> str:
    if isinstance(tp, type):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _structure_str(value: object, cl: object) -> object:
    if isinstance(value, str):
        return value if cl is str else _call(cl, value)  # a str enum, say
    raise TypeError(f"expected a string, got {_describe(value)}")


def _structure_int(value: object, cl: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if cl is int else _call(cl, value)  # an IntEnum, say
    raise TypeError(f"expected an integer, got {_describe(value)}")


def _structure_float(value: object, cl: object) -> object:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if cl is float else _call(cl, value)
    raise TypeError(f"expected a number, got {_describe(value)}")


def _structure_bool(value: object, _: object) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {_describe(value)}")


def _structure_none(value: object, _: object) -> None:
    if value is not None:
        raise TypeError(f"expected null, got {_describe(value)}")


def _is_array(value: object) -> bool:
    # Strings and objects are iterable too: "ab" would pass as ["a", "b"].
    return isinstance(value, collections.abc.Iterable) and not isinstance(
        value, (str, bytes, collections.abc.Mapping)
    )


def _identity(value: object, _: object) -> object:
    return value


def _call(cl: object, value: object) -> object:
    return typing.cast("Callable[[object], object]", cl)(value)


def _is_record(tp: object) -> bool:
    cls = typing.get_origin(tp) or tp
    return isinstance(cls, type) and (attrs.has(cls) or dataclasses.is_dataclass(cls))


def _is_keyed_mapping(tp: object) -> bool:
    args = typing.get_args(tp)
    return (
        typing.get_origin(tp) in _MAPPINGS
        and len(args) == 2  # key and value
        and args[0] not in _STR_KEYS
    )


def _is_collection(tp: object) -> bool:
    return (typing.get_origin(tp) or tp) in _COLLECTIONS


def _aware(value: object) -> object:
    if isinstance(value, datetime.datetime) and value.utcoffset() is None:
        raise ValueError(
            f"datetime {value.isoformat()} has no time zone: a job's datetimes "
            "must be timezone-aware (for example datetime.now(timezone.utc)), "
            "since workers on other machines read them"
        )
    return value


def _refuse_naive_datetimes(converter: cattrs.Converter, *, structure: bool) -> None:
    """Make ``converter`` refuse naive datetimes.

    It refuses them when it writes them, and also when it reads them if
    ``structure`` is true (the checker used at submit time).
    """
    unstructure = converter.get_unstructure_hook(datetime.datetime)
    converter.register_unstructure_hook(
        datetime.datetime, lambda value: unstructure(_aware(value))
    )
    if structure:
        read: _Hook = converter.get_structure_hook(datetime.datetime)
        converter.register_structure_hook(
            datetime.datetime, lambda value, cl: _aware(read(value, cl))
        )


def _configure_strict(converter: cattrs.Converter) -> None:
    """Make ``converter`` check types instead of coercing (``str(5)``, ``int(2.5)``)."""
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(type(None), _structure_none)

    def record_hook(cl: type) -> _Hook:
        inner = typing.cast("_Hook", converter.gen_structure_attrs_fromdict(cl))
        name = _type_name(cl)

        def structure_record(value: object, cl: object) -> object:
            if not isinstance(value, collections.abc.Mapping):
                raise TypeError(
                    f"expected a JSON object for {name}, got {_describe(value)}"
                )
            return inner(typing.cast("collections.abc.Mapping[str, object]", value), cl)

        return structure_record

    def mapping_hook(cl: object) -> _Hook:
        key_type, value_type = typing.get_args(cl)
        key_hook: _Hook = converter.get_structure_hook(key_type)
        value_hook: _Hook = converter.get_structure_hook(value_type)

        def structure_key(key: object) -> object:
            try:
                return key_hook(key, key_type)
            except Exception:
                decoded = _decode_key(key)
                if decoded is _NOT_JSON:
                    raise
            return key_hook(decoded, key_type)

        def structure_mapping(value: object, _: object) -> dict[object, object]:
            if not isinstance(value, collections.abc.Mapping):
                raise TypeError(f"expected a JSON object, got {_describe(value)}")
            mapping = typing.cast("collections.abc.Mapping[object, object]", value)
            result: dict[object, object] = {}
            errors: list[Exception] = []
            for key, item in mapping.items():
                try:
                    result[structure_key(key)] = value_hook(item, value_type)
                except Exception as error:  # collected and raised together below
                    error.add_note(
                        IterableValidationNote(
                            f"Structuring mapping item @ key {key!r}",
                            str(key),
                            value_type,
                        )
                    )
                    errors.append(error)
            if errors:
                message = f"While structuring {_type_name(cl)}"
                # cattrs's __new__ takes cl; pyright checks ExceptionGroup.__init__ too.
                raise IterableValidationError(message, errors, dict)  # pyright: ignore[reportCallIssue]
            return result

        return structure_mapping

    def item_hook(tp: object) -> tuple[object, _Hook]:
        if tp is object or tp is typing.Any:
            return tp, _identity
        hook: _Hook = converter.get_structure_hook(tp)
        return tp, hook

    def collection_hook(cl: object) -> _Hook:
        build = _COLLECTIONS[typing.get_origin(cl) or cl]
        args = typing.get_args(cl)
        # tuple[int, str] types its items by position; list[int], tuple[int, ...]
        # and a bare list (any items) type them all alike.
        by_position = build is tuple and bool(args) and args[-1] is not Ellipsis
        hooks = [
            item_hook(tp) for tp in (args if by_position else args[:1] or (object,))
        ]
        name = _type_name(cl)

        def structure_collection(value: object, _: object) -> object:
            if not _is_array(value):
                raise TypeError(
                    f"expected a JSON array for {name}, got {_describe(value)}"
                )
            items = list(typing.cast("collections.abc.Iterable[object]", value))
            if by_position and len(items) != len(hooks):
                raise TypeError(
                    f"expected {len(hooks)} items for {name}, got {len(items)}"
                )
            result: list[object] = []
            errors: list[Exception] = []
            for index, item in enumerate(items):
                tp, hook = hooks[index] if by_position else hooks[0]
                try:
                    result.append(hook(item, tp))
                except Exception as error:  # collected and raised together below
                    note = f"Structuring {name} @ index {index}"
                    error.add_note(IterableValidationNote(note, index, tp))
                    errors.append(error)
            if errors:
                message = f"While structuring {name}"
                # cattrs's __new__ takes cl; pyright checks ExceptionGroup.__init__ too.
                raise IterableValidationError(message, errors, list)  # pyright: ignore[reportCallIssue]
            return build(result)

        return structure_collection

    converter.register_structure_hook_factory(_is_record, record_hook)
    converter.register_structure_hook_factory(_is_collection, collection_hook)
    converter.register_structure_hook_factory(_is_keyed_mapping, mapping_hook)


_NOT_JSON: Final = object()


def _decode_key(key: object) -> object:
    """Parse a JSON object's key as JSON: ``"1"`` for the int 1, say."""
    if isinstance(key, str):
        try:
            return _DECODER.decode(key)
        except ValueError:
            pass
    return _NOT_JSON


def _format_error(error: BaseException, tp: type | None) -> str:
    del tp
    if isinstance(error, KeyError):
        return "required field missing"
    if isinstance(error, ForbiddenExtraKeysError):
        return f"unknown fields {', '.join(sorted(error.extra_fields))}"
    return str(error) or type(error).__name__


def _explain(error: BaseException) -> str:
    """Say what is wrong and where, as ``problem @ $.path``, one per problem."""
    return "; ".join(cattrs.transform_error(error, format_exception=_format_error))
