"""Cron expressions: when a recurring job runs next.

Five fields, as in Vixie cron: minute, hour, day of month, month, day of week,
always read in UTC.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
import functools
import re
from typing import Final, final

import attrs

_UTC: Final = dt.UTC
#: How many years `CronExpression.next_after` searches before it gives up.
#: `CronExpression.parse` rejects the expressions that never match, and every
#: other one matches within 12 years (the longest gap: the 1st of January on a
#: Monday, from 2091 to 2103, as in ``0 0 */31 1 1``; February 29th comes at most
#: 8 years apart), so the bound only guarantees that a search ends.
SEARCH_YEARS: Final = 50

_MACROS: Final[dict[str, str]] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Spelled out: calendar.month_abbr follows the locale.
_MONTH_NAMES: Final = {
    name: number
    for number, name in enumerate(
        (
            "JAN",
            "FEB",
            "MAR",
            "APR",
            "MAY",
            "JUN",
            "JUL",
            "AUG",
            "SEP",
            "OCT",
            "NOV",
            "DEC",
        ),
        start=1,
    )
}
_DAY_NAMES: Final = {
    name: number
    for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_ITEM: Final = re.compile(
    r"(?P<start>\*|[0-9]+|[A-Za-z]+)"
    r"(?:-(?P<end>[0-9]+|[A-Za-z]+))?"
    r"(?:/(?P<step>[0-9]+))?"
)
#: The most days each month can have (February: 29, in leap years).
_MONTH_DAYS: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@final
@attrs.frozen
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_MINUTE: Final = _Field("minute", 0, 59)
_HOUR: Final = _Field("hour", 0, 23)
_DAY: Final = _Field("day-of-month", 1, 31)
_MONTH: Final = _Field("month", 1, 12, _MONTH_NAMES)
#: 7 is Sunday too.
_WEEKDAY: Final = _Field("day-of-week", 0, 7, _DAY_NAMES)


@final
@attrs.frozen(repr=False)
class CronExpression:
    """A parsed 5-field cron expression, read in UTC.

    The fields are minute (0-59), hour (0-23), day of month (1-31), month (1-12
    or JAN-DEC) and day of week (0-7 or SUN-SAT, where 0 and 7 are Sunday).
    Each field is ``*``, a number, a range ``a-b``, a step ``*/n`` or
    ``a-b/n``, or a comma-separated list of those; names are case-insensitive.
    The macros ``@yearly`` (or ``@annually``), ``@monthly``, ``@weekly``,
    ``@daily`` (or ``@midnight``) and ``@hourly`` stand for the usual
    expressions.

    As in Vixie cron, when both the day of month and the day of week are
    restricted (neither field starts with ``*``), a day matches if *either*
    matches: ``0 0 13 * FRI`` runs on every 13th and on every Friday.
    Otherwise a day must match both.

    Build one with `CronExpression.parse`; the fields hold the sorted values of
    each field.
    """

    #: The expression as it was given.
    expression: str = attrs.field(eq=False)
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    #: 0 is Sunday (7 is stored as 0).
    weekdays: tuple[int, ...]
    #: Whether a day matches if either its day of month or its weekday does.
    day_or: bool
    _day_mask: int = attrs.field(init=False, eq=False)
    _weekday_mask: int = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_day_mask", _mask(self.days))
        object.__setattr__(self, "_weekday_mask", _mask(self.weekdays))

    @staticmethod
    def parse(expression: str) -> CronExpression:
        """Parse a 5-field cron expression or a macro such as ``@daily``.

        Raises:
            TypeError: ``expression`` is not a `str`.
            ValueError: the expression is malformed (the message names the
                field and the value), or it never matches, as ``0 0 30 2 *``.
        """
        if not isinstance(expression, str):
            raise TypeError(f"a cron expression must be a str, not {expression!r}")
        return _parse(expression)

    def matches(self, when: dt.datetime) -> bool:
        """Return whether the minute of ``when`` (a timezone-aware datetime) matches.

        Raises:
            ValueError: ``when`` is naive.
        """
        t = _to_utc(when)
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t.day, (t.isoweekday()) % 7)
        )

    def next_after(self, when: dt.datetime) -> dt.datetime:
        """Return the first matching minute strictly after ``when``, in UTC.

        Args:
            when: a timezone-aware datetime; its seconds and microseconds are
                dropped, so the result is at least the next whole minute.

        Returns:
            A timezone-aware UTC datetime with zero seconds.

        Raises:
            ValueError: ``when`` is naive, or no minute matches before the year
                10000 (or within 50 years: that cannot happen to an expression
                that `CronExpression.parse` accepted).
        """
        start = _to_utc(when).replace(second=0, microsecond=0, tzinfo=None)
        try:
            start += dt.timedelta(minutes=1)
        except OverflowError:  # the last minute of the year 9999
            found = None
        else:
            found = self._search(
                start.year, start.month, start.day, start.hour, start.minute
            )
        if found is None:
            raise ValueError(
                f"no minute matches {self.expression!r} within {SEARCH_YEARS} "
                f"years after {when} (or before the year {dt.MAXYEAR + 1})"
            )
        return found

    def _search(
        self, year: int, month: int, day: int, hour: int, minute: int
    ) -> dt.datetime | None:
        """Skip field by field: whole months, then days, then hours, then minutes."""
        months, hours, minutes = self.months, self.hours, self.minutes
        last_year = min(year + SEARCH_YEARS, dt.MAXYEAR)
        while year <= last_year:
            i = bisect.bisect_left(months, month)
            if i == len(months):  # no month left this year
                year, month, day, hour, minute = year + 1, months[0], 1, 0, 0
                continue
            if months[i] != month:
                month, day, hour, minute = months[i], 1, 0, 0
            first_weekday, length = calendar.monthrange(year, month)
            found_day = self._first_day(day, length, (first_weekday + 1) % 7)
            if found_day is None:  # no day left this month
                month, day, hour, minute = month + 1, 1, 0, 0
                continue
            if found_day != day:
                day, hour, minute = found_day, 0, 0
            i = bisect.bisect_left(hours, hour)
            if i == len(hours):  # no hour left this day
                day, hour, minute = day + 1, 0, 0
                continue
            if hours[i] != hour:
                hour, minute = hours[i], 0
            i = bisect.bisect_left(minutes, minute)
            if i == len(minutes):  # no minute left this hour
                hour, minute = hour + 1, 0
                continue
            return dt.datetime(year, month, day, hour, minutes[i], tzinfo=_UTC)
        return None

    def _first_day(self, day: int, length: int, first_weekday: int) -> int | None:
        """The first matching day from ``day`` on, in a month of ``length`` days.

        ``first_weekday`` is the weekday of the 1st (0 is Sunday).
        """
        for candidate in range(day, length + 1):
            if self._day_matches(candidate, (first_weekday + candidate - 1) % 7):
                return candidate
        return None

    def _day_matches(self, day: int, weekday: int) -> bool:
        by_day = self._day_mask >> day & 1
        by_weekday = self._weekday_mask >> weekday & 1
        return bool(by_day | by_weekday if self.day_or else by_day & by_weekday)

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        return f"CronExpression({self.expression!r})"


def _to_utc(when: dt.datetime) -> dt.datetime:
    if not isinstance(when, dt.datetime):
        raise TypeError(f"expected a datetime, not {when!r}")
    if when.utcoffset() is None:
        raise ValueError(f"expected a timezone-aware datetime, not the naive {when}")
    return when.astimezone(_UTC)


def _mask(values: tuple[int, ...]) -> int:
    mask = 0
    for value in values:
        mask |= 1 << value
    return mask


@functools.lru_cache(maxsize=256)
def _parse(expression: str) -> CronExpression:
    text = expression.strip()
    if text.startswith("@"):
        macro = _MACROS.get(text.lower())
        if macro is None:
            known = ", ".join(_MACROS)
            raise ValueError(
                f"invalid cron expression {expression!r}: unknown macro {text!r} "
                f"(known: {known})"
            )
        text = macro
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"invalid cron expression {expression!r}: expected 5 fields (minute hour "
            f"day-of-month month day-of-week), got {len(parts)}"
        )
    try:
        minutes = _parse_field(parts[0], _MINUTE)
        hours = _parse_field(parts[1], _HOUR)
        days = _parse_field(parts[2], _DAY)
        months = _parse_field(parts[3], _MONTH)
        weekdays = frozenset(v % 7 for v in _parse_field(parts[4], _WEEKDAY))
    except ValueError as error:
        raise ValueError(f"invalid cron expression {expression!r}: {error}") from None
    day_star = parts[2].startswith("*")
    weekday_star = parts[4].startswith("*")
    if (
        weekday_star
        and not day_star
        and not any(day <= _MONTH_DAYS[month] for day in days for month in months)
    ):
        raise ValueError(
            f"cron expression {expression!r} never matches: day-of-month "
            f"{_list(days)} does not occur in month {_list(months)}"
        )
    return CronExpression(
        expression=expression,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(sorted(days)),
        months=tuple(sorted(months)),
        weekdays=tuple(sorted(weekdays)),
        day_or=not (day_star or weekday_star),
    )


def _list(values: frozenset[int]) -> str:
    return ",".join(map(str, sorted(values)))


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"{field.name} field: cannot parse {item!r}")
        start, end, step = match.group("start", "end", "step")
        if start == "*":
            if end is not None:
                raise ValueError(f"{field.name} field: cannot parse {item!r}")
            low, high = field.low, field.high
        else:
            low = _value(start, field, item)
            high = low if end is None else _value(end, field, item)
            if end is None and step is not None:
                raise ValueError(
                    f"{field.name} field: a step needs a range, as in "
                    f"'{start}-{field.high}/{step}' or '*/{step}', not {item!r}"
                )
            if low > high:
                raise ValueError(
                    f"{field.name} field: range {item!r} goes backwards "
                    f"({low} > {high})"
                )
        stride = 1 if step is None else int(step)
        if stride == 0:
            raise ValueError(f"{field.name} field: step 0 in {item!r}")
        values.update(range(low, high + 1, stride))
    return frozenset(values)


def _value(token: str, field: _Field, item: str) -> int:
    if token.isdigit():
        value = int(token)
    elif field.names is not None and token.upper() in field.names:
        value = field.names[token.upper()]
    else:
        kind = "number or a name" if field.names is not None else "number"
        raise ValueError(f"{field.name} field: {_where(token, item)} is not a {kind}")
    if not field.low <= value <= field.high:
        where = "" if token == item else f" in {item!r}"
        raise ValueError(
            f"{field.name} field: {value}{where} is out of range "
            f"{field.low}-{field.high}"
        )
    return value


def _where(token: str, item: str) -> str:
    return repr(token) if token == item else f"{token!r} in {item!r}"
