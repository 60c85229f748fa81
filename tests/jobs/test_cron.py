from __future__ import annotations

import datetime as dt
import re
import typing

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from trunner.jobs._cron import SEARCH_YEARS, CronExpression

UTC = dt.UTC
ONE_MINUTE = dt.timedelta(minutes=1)


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def upcoming(expression: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    cron = CronExpression.parse(expression)
    times: list[dt.datetime] = []
    for _ in range(count):
        start = cron.next_after(start)
        times.append(start)
    return times


# --- parse --------------------------------------------------------------------------


def test_parse_every_minute() -> None:
    cron = CronExpression.parse("* * * * *")

    assert cron.minutes == tuple(range(60))
    assert cron.hours == tuple(range(24))
    assert cron.days == tuple(range(1, 32))
    assert cron.months == tuple(range(1, 13))
    assert cron.weekdays == tuple(range(7))
    assert cron.day_or is False


@pytest.mark.parametrize(
    ("expression", "field", "values"),
    [
        ("5 * * * *", "minutes", (5,)),
        ("05 * * * *", "minutes", (5,)),
        ("*/15 * * * *", "minutes", (0, 15, 30, 45)),
        ("10-20/5 * * * *", "minutes", (10, 15, 20)),
        ("1,2,59 * * * *", "minutes", (1, 2, 59)),
        ("50-59/20,0 * * * *", "minutes", (0, 50)),
        ("* 9-17 * * *", "hours", tuple(range(9, 18))),
        ("* 23 * * *", "hours", (23,)),
        ("* * 1,15,31 * *", "days", (1, 15, 31)),
        ("* * */10 * *", "days", (1, 11, 21, 31)),
        ("* * * JAN,mar,Dec * ", "months", (1, 3, 12)),
        ("* * * jun-AUG *", "months", (6, 7, 8)),
        ("* * * */3 *", "months", (1, 4, 7, 10)),
        ("* * * * MON-FRI", "weekdays", (1, 2, 3, 4, 5)),
        ("* * * * sun", "weekdays", (0,)),
        ("* * * * 7", "weekdays", (0,)),
        ("* * * * 5-7", "weekdays", (0, 5, 6)),
        ("* * * * 0,7", "weekdays", (0,)),
        ("* * * * */2", "weekdays", (0, 2, 4, 6)),
        ("* * * * SAT-7", "weekdays", (0, 6)),
        ("* * * * 1-5/2", "weekdays", (1, 3, 5)),
    ],
)
def test_parse_fields(expression: str, field: str, values: tuple[int, ...]) -> None:
    cron = CronExpression.parse(expression)

    assert getattr(cron, field) == values


@pytest.mark.parametrize(
    ("macro", "expression"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("  @DAILY ", "0 0 * * *"),
    ],
)
def test_parse_macros(macro: str, expression: str) -> None:
    cron = CronExpression.parse(macro)

    assert cron == CronExpression.parse(expression)
    assert cron.expression == macro


def test_parse_ignores_extra_whitespace() -> None:
    assert CronExpression.parse(" 0\t8  * *   * ") == CronExpression.parse("0 8 * * *")


def test_day_or_only_when_both_day_fields_are_restricted() -> None:
    assert CronExpression.parse("0 0 13 * FRI").day_or is True
    assert CronExpression.parse("0 0 13 * *").day_or is False
    assert CronExpression.parse("0 0 * * FRI").day_or is False
    # As in Vixie cron, a field that starts with "*" counts as unrestricted.
    assert CronExpression.parse("0 0 */2 * FRI").day_or is False
    assert CronExpression.parse("0 0 1-31 * 0-7").day_or is True


def test_expression_equality_ignores_spelling() -> None:
    a = CronExpression.parse("0 8 * * MON")
    b = CronExpression.parse("00 08 * * 1")

    assert a == b
    assert hash(a) == hash(b)
    assert a != CronExpression.parse("0 9 * * MON")


def test_expression_str_and_repr() -> None:
    cron = CronExpression.parse("0 8 * * *")

    assert str(cron) == "0 8 * * *"
    assert repr(cron) == "CronExpression('0 8 * * *')"


def test_parse_caches_expressions() -> None:
    assert CronExpression.parse("1 2 3 4 5") is CronExpression.parse("1 2 3 4 5")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "expected 5 fields (minute hour day-of-month month day-of-week), got 0"),
        ("* * * *", "got 4"),
        ("* * * * * *", "got 6"),
        ("60 * * * *", "minute field: 60 is out of range 0-59"),
        ("* 24 * * *", "hour field: 24 is out of range 0-23"),
        ("* * 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("* * 32 * *", "day-of-month field: 32 is out of range 1-31"),
        ("* * * 13 *", "month field: 13 is out of range 1-12"),
        ("* * * 0 *", "month field: 0 is out of range 1-12"),
        ("* * * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("1-60 * * * *", "minute field: 60 in '1-60' is out of range 0-59"),
        ("* * * FOO *", "month field: 'FOO' is not a number or a name"),
        (
            "* * * JAN-FOO *",
            "month field: 'FOO' in 'JAN-FOO' is not a number or a name",
        ),
        ("* * * * MONDAY", "day-of-week field: 'MONDAY' is not a number or a name"),
        ("MON * * * *", "minute field: 'MON' is not a number"),
        ("* * * MON *", "month field: 'MON' is not a number or a name"),
        ("* * * * JAN", "day-of-week field: 'JAN' is not a number or a name"),
        (
            "5/10 * * * *",
            "minute field: a step needs a range, as in '5-59/10' or '*/10'",
        ),
        ("5-1 * * * *", "minute field: range '5-1' goes backwards (5 > 1)"),
        (
            "* * * * FRI-MON",
            "day-of-week field: range 'FRI-MON' goes backwards (5 > 1)",
        ),
        ("*/0 * * * *", "minute field: step 0 in '*/0'"),
        ("1-5/0 * * * *", "minute field: step 0 in '1-5/0'"),
        ("1,,2 * * * *", "minute field: cannot parse ''"),
        ("1, * * * *", "minute field: cannot parse ''"),
        ("*-5 * * * *", "minute field: cannot parse '*-5'"),
        ("-1 * * * *", "minute field: cannot parse '-1'"),
        ("? * * * *", "minute field: cannot parse '?'"),
        ("* * L * *", "day-of-month field: 'L' is not a number"),
        ("* * * * 5#3", "day-of-week field: cannot parse '5#3'"),
        ("1.5 * * * *", "minute field: cannot parse '1.5'"),
        ("٣ * * * *", "minute field: cannot parse '٣'"),
        ("*/ * * * *", "minute field: cannot parse '*/'"),
        ("@reboot", "unknown macro '@reboot' (known: @yearly, @annually, @monthly"),
        ("@daily *", "unknown macro '@daily *'"),
    ],
)
def test_parse_rejects_malformed_expressions(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        CronExpression.parse(expression)

    assert str(info.value).startswith(f"invalid cron expression {expression!r}: ")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 30 2 *", "day-of-month 30 does not occur in month 2"),
        ("0 0 30,31 FEB *", "day-of-month 30,31 does not occur in month 2"),
        ("0 0 31 4,6,9,11 *", "day-of-month 31 does not occur in month 4,6,9,11"),
        ("0 0 31 APR */1", "day-of-month 31 does not occur in month 4"),
    ],
)
def test_parse_rejects_expressions_that_never_match(
    expression: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        CronExpression.parse(expression)

    assert str(info.value).startswith(f"cron expression {expression!r} never matches: ")


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # leap days
        "0 0 30 2 MON",  # either: any Monday of February
        "0 0 */30 2 MON",  # both: "*/30" holds the 1st, some year a Monday
        "0 0 31 2,3 *",
    ],
)
def test_parse_accepts_rare_but_possible_days(expression: str) -> None:
    cron = CronExpression.parse(expression)

    assert cron.next_after(utc(2024, 3, 15)) > utc(2024, 3, 15)


def test_parse_rejects_a_non_str() -> None:
    with pytest.raises(TypeError, match="a cron expression must be a str, not 5"):
        CronExpression.parse(5)  # type: ignore[arg-type]  # checked at run time


# --- next_after ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "start", "expected"),
    [
        (
            "0 8 * * *",
            utc(2024, 3, 15, 12, 34, 56),
            [utc(2024, 3, 16, 8), utc(2024, 3, 17, 8)],
        ),
        (
            "*/15 * * * *",
            utc(2024, 3, 15, 12, 34, 56),
            [utc(2024, 3, 15, 12, 45), utc(2024, 3, 15, 13), utc(2024, 3, 15, 13, 15)],
        ),
        (
            "* * * * *",
            utc(2024, 12, 31, 23, 59, 59, 999999),
            [utc(2025, 1, 1, 0, 0), utc(2025, 1, 1, 0, 1)],
        ),
        (
            "0 0 29 2 *",
            utc(2024, 2, 29),
            [utc(2028, 2, 29), utc(2032, 2, 29)],
        ),
        (
            "0 0 29 2 *",
            utc(2096, 3, 1),
            [utc(2104, 2, 29)],  # 2100 is no leap year
        ),
        (
            "0 0 31 * *",
            utc(2024, 1, 31, 0, 0, 1),
            [utc(2024, 3, 31), utc(2024, 5, 31), utc(2024, 7, 31), utc(2024, 8, 31)],
        ),
        (
            "30 4 1,15 * 5",  # the 1st, the 15th and every Friday
            utc(2024, 3, 15, 5),
            [utc(2024, 3, 22, 4, 30), utc(2024, 3, 29, 4, 30), utc(2024, 4, 1, 4, 30)],
        ),
        (
            "0 0 */2 * FRI",  # odd days that are Fridays
            utc(2024, 3, 1),
            [utc(2024, 3, 15), utc(2024, 3, 29), utc(2024, 4, 5)],
        ),
        (
            "0 12 * JAN-MAR MON-FRI",
            utc(2024, 3, 29, 13),
            [utc(2025, 1, 1, 12), utc(2025, 1, 2, 12), utc(2025, 1, 3, 12)],
        ),
        (
            "@weekly",
            utc(2024, 3, 15),
            [utc(2024, 3, 17), utc(2024, 3, 24)],
        ),
        (
            "@yearly",
            utc(2024, 1, 1),
            [utc(2025, 1, 1), utc(2026, 1, 1)],
        ),
        (
            "59 23 31 12 *",
            utc(2024, 1, 1),
            [utc(2024, 12, 31, 23, 59), utc(2025, 12, 31, 23, 59)],
        ),
        (
            "0 0 */31 1 1",  # the 1st of January on a Monday: the longest gap
            utc(2091, 1, 1),
            [utc(2103, 1, 1)],
        ),
    ],
)
def test_next_after(
    expression: str, start: dt.datetime, expected: list[dt.datetime]
) -> None:
    assert upcoming(expression, start, len(expected)) == expected


def test_next_after_is_strictly_after_a_matching_minute() -> None:
    cron = CronExpression.parse("0 8 * * *")

    assert cron.next_after(utc(2024, 1, 1, 8)) == utc(2024, 1, 2, 8)
    assert cron.next_after(utc(2024, 1, 1, 7, 59, 59)) == utc(2024, 1, 1, 8)


def test_next_after_reads_other_timezones_as_utc() -> None:
    cron = CronExpression.parse("0 8 * * *")
    paris = dt.timezone(dt.timedelta(hours=2))

    result = cron.next_after(dt.datetime(2024, 6, 1, 9, 30, tzinfo=paris))

    assert result == utc(2024, 6, 1, 8)  # 09:30 in UTC+2 is 07:30 UTC
    assert result.tzinfo is UTC


def test_next_after_refuses_naive_datetimes() -> None:
    cron = CronExpression.parse("* * * * *")

    with pytest.raises(ValueError, match="expected a timezone-aware datetime"):
        cron.next_after(dt.datetime(2024, 1, 1))  # naive on purpose
    with pytest.raises(TypeError, match="expected a datetime, not"):
        cron.next_after(dt.date(2024, 1, 1))  # type: ignore[arg-type]  # checked at run time


def test_next_after_at_the_end_of_time() -> None:
    cron = CronExpression.parse("* * * * *")

    assert cron.next_after(utc(9999, 12, 31, 23, 58)) == utc(9999, 12, 31, 23, 59)
    with pytest.raises(
        ValueError, match="no minute matches '\\* \\* \\* \\* \\*' within"
    ):
        cron.next_after(utc(9999, 12, 31, 23, 59))
    with pytest.raises(ValueError, match="before the year 10000"):
        CronExpression.parse("0 0 1 1 *").next_after(utc(9999, 6, 1))


def test_next_after_gives_up_after_a_bounded_search() -> None:
    # parse() refuses this; built directly, the search must still end.
    never = attrs.evolve(CronExpression.parse("0 0 29 2 *"), days=(30,))

    with pytest.raises(ValueError, match=f"within {SEARCH_YEARS} years"):
        never.next_after(utc(2024, 1, 1))


def test_matches() -> None:
    cron = CronExpression.parse("30 4 1,15 * 5")

    assert cron.matches(utc(2024, 3, 22, 4, 30, 59))  # a Friday
    assert cron.matches(utc(2024, 4, 1, 4, 30))  # the 1st, a Monday
    assert not cron.matches(utc(2024, 4, 2, 4, 30))
    assert not cron.matches(utc(2024, 3, 22, 4, 31))
    assert not cron.matches(utc(2024, 3, 22, 5, 30))
    assert CronExpression.parse("* * * FEB *").matches(utc(2024, 2, 1))
    assert not CronExpression.parse("* * * FEB *").matches(utc(2024, 3, 1))


# --- properties ---------------------------------------------------------------------

MONTHS = (
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
)
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def ref_field(
    text: str, low: int, high: int, names: tuple[str, ...] = (), base: int = 0
) -> frozenset[int]:
    """An independent, plain reading of one cron field."""

    def number(token: str) -> int:
        if token.upper() in names:
            return names.index(token.upper()) + base
        return int(token)

    values: set[int] = set()
    for item in text.split(","):
        body, _, step = item.partition("/")
        if body == "*":
            first, last = low, high
        elif "-" in body:
            a, b = body.split("-")
            first, last = number(a), number(b)
        else:
            first = last = number(body)
        values.update(range(first, last + 1, int(step or 1)))
    return frozenset(values)


def ref_matcher(expression: str) -> typing.Callable[[dt.datetime], bool]:
    """Whether a minute matches, read straight from the text (Vixie semantics)."""
    minute, hour, dom, month, dow = expression.split()
    minutes = ref_field(minute, 0, 59)
    hours = ref_field(hour, 0, 23)
    days = ref_field(dom, 1, 31)
    months = ref_field(month, 1, 12, MONTHS, base=1)
    weekdays = {v % 7 for v in ref_field(dow, 0, 7, DAYS)}
    either = not dom.startswith("*") and not dow.startswith("*")

    def matches(when: dt.datetime) -> bool:
        by_dom = when.day in days
        by_dow = when.isoweekday() % 7 in weekdays
        return (
            when.minute in minutes
            and when.hour in hours
            and when.month in months
            and ((by_dom or by_dow) if either else (by_dom and by_dow))
        )

    return matches


def field_strategy(
    low: int, high: int, names: tuple[str, ...] = ()
) -> st.SearchStrategy[str]:
    value = st.integers(low, high).map(str)
    if names:
        spellings = st.sampled_from(names).flatmap(
            lambda n: st.sampled_from([n, n.lower(), n.title()])
        )
        value = value | spellings

    def ordered(pair: tuple[int, int]) -> str:
        return f"{min(pair)}-{max(pair)}"

    ranges = st.tuples(st.integers(low, high), st.integers(low, high)).map(ordered)
    steps = st.integers(1, high - low + 2).map(str)
    item = st.one_of(
        value,
        ranges,
        st.tuples(ranges, steps).map("/".join),
        steps.map("*/{}".format),
    )
    return st.just("*") | st.lists(item, min_size=1, max_size=3).map(",".join)


cron_expressions = st.tuples(
    field_strategy(0, 59),
    field_strategy(0, 23),
    field_strategy(1, 31),
    field_strategy(1, 12, MONTHS),
    field_strategy(0, 7, DAYS),
).map(" ".join)
instants = st.datetimes(
    # Naive bounds: hypothesis adds the timezone.
    min_value=dt.datetime(1990, 1, 1),
    max_value=dt.datetime(2200, 1, 1),
    timezones=st.just(UTC),
)


def parse_or_reject(expression: str) -> CronExpression:
    try:
        return CronExpression.parse(expression)
    except ValueError:
        assume(False)  # an expression that never matches: tested above
        raise


#: How far the minute-by-minute reference looks before it goes day by day.
WINDOW = dt.timedelta(days=2)
ONE_DAY = dt.timedelta(days=1)


def assert_no_match_between(
    expression: str, cron: CronExpression, after: dt.datetime, until: dt.datetime
) -> None:
    """No minute strictly after ``after`` and before ``until`` matches."""
    matches = ref_matcher(expression)
    t = after.replace(second=0, microsecond=0) + ONE_MINUTE
    # Minute by minute over a window, up to a midnight...
    window_end = min(until, (t + WINDOW).replace(hour=0, minute=0))
    while t < window_end:
        assert not matches(t), t
        t += ONE_MINUTE
    # ...then day by day (a day that matches at all matches at its first hour
    # and minute)...
    while t + ONE_DAY <= until:
        assert not matches(t.replace(hour=min(cron.hours), minute=min(cron.minutes)))
        t += ONE_DAY
    # ...and minute by minute again on the last day.
    while t < until:
        assert not matches(t), t
        t += ONE_MINUTE


@given(cron_expressions, instants)
def test_property_next_after_is_the_first_match(
    expression: str, start: dt.datetime
) -> None:
    cron = parse_or_reject(expression)

    result = cron.next_after(start)

    assert result > start
    assert result.tzinfo is UTC
    assert (result.second, result.microsecond) == (0, 0)
    assert cron.matches(result)
    assert ref_matcher(expression)(result)
    assert_no_match_between(expression, cron, start, result)


@given(cron_expressions, instants)
def test_property_matches_agrees_with_the_reference(
    expression: str, when: dt.datetime
) -> None:
    cron = parse_or_reject(expression)

    assert cron.matches(when) == ref_matcher(expression)(when)


@given(cron_expressions, instants, st.integers(0, 10**6))
def test_property_next_after_is_monotonic(
    expression: str, start: dt.datetime, seconds: int
) -> None:
    cron = parse_or_reject(expression)
    later = start + dt.timedelta(seconds=seconds)

    first = cron.next_after(start)

    assert first <= cron.next_after(later)
    assert cron.next_after(first - dt.timedelta(seconds=1)) == first
    if later < first:
        assert cron.next_after(later) == first


@given(
    st.sampled_from(["* * * * *", "*/7 */5 * * *", "0 0 * * MON", "0 0 13 * FRI"]),
    instants,
)
def test_property_minute_by_minute_for_frequent_expressions(
    expression: str, start: dt.datetime
) -> None:
    cron = CronExpression.parse(expression)
    matches = ref_matcher(expression)
    t = start.replace(second=0, microsecond=0)

    for _ in range(3):
        result = cron.next_after(t)
        t += ONE_MINUTE
        while not matches(t):
            t += ONE_MINUTE
        assert result == t
