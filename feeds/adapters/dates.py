"""Reading the dates source pages print, in English, French and Spanish, into timezone-aware datetimes."""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import datetime, tzinfo

from feeds.adapters.common import TYPE_MAX, clean_text

# Keys are folded (no accents, casefolded, no trailing dot) so "Février", "fevrier" and "FÉVR." all match.
MONTHS: dict[str, int] = {
    # English
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
    # French
    "janvier": 1, "janv": 1, "fevrier": 2, "fevr": 2, "fev": 2, "mars": 3, "avril": 4, "avr": 4,
    "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "aout": 8, "septembre": 9, "octobre": 10,
    "novembre": 11, "decembre": 12,
    # Spanish
    "enero": 1, "ene": 1, "febrero": 2, "marzo": 3, "abril": 4, "abr": 4, "mayo": 5, "junio": 6,
    "julio": 7, "agosto": 8, "ago": 8, "septiembre": 9, "setiembre": 9, "set": 9, "octubre": 10,
    "noviembre": 11, "diciembre": 12, "dic": 12,
}  # fmt: skip
WEEKDAYS = frozenset({
    "monday", "mon", "tuesday", "tue", "tues", "wednesday", "wed", "thursday", "thu", "thur", "thurs",
    "friday", "fri", "saturday", "sat", "sunday", "sun",
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
    "lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo",
})  # fmt: skip
# Years outside this range are typos ("20221"), and would overflow when rendered in other zones.
FIRST_YEAR, LAST_YEAR = 1800, 2999

_WORD = r"[^\W\d_]+"
_WEEKDAY = rf"(?:(?P<weekday>{_WORD})\.?,?\s+)?"
# "10 January 2022", "1er mars 2020", "25 de agosto de 2020", "lundi 4 février 2019"
_DAY_MONTH_YEAR = re.compile(
    rf"^{_WEEKDAY}(?P<day>\d{{1,2}})(?:er|re|st|nd|rd|th|o|\.o|°|\.)?\s+(?:de\s+)?(?P<month>{_WORD})\.?,?"
    rf"\s+(?:de\s+|del\s+)?(?P<year>\d{{4}})$"
)
# "January 10, 2022", "Monday, January 10, 2022"
_MONTH_DAY_YEAR = re.compile(
    rf"^{_WEEKDAY}(?P<month>{_WORD})\.?\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})$"
)
# "29.10.2021": day first, as on the Organization's European-language pages; slashes are left out
# because "10/01/2022" means different days in different countries.
_DOTTED = re.compile(r"^(?P<day>\d{1,2})\.(?P<month>\d{1,2})\.(?P<year>\d{4})$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$")
EXPECTED = 'a date such as "10 January 2022", "4 février 2019" or "25 de agosto de 2020"'


def _fold(cleaned: str) -> str:
    folded = cleaned.casefold()
    if folded.isascii():  # nothing to decompose: the common case, kept off the per-character path
        return folded
    # Month and weekday names are Latin letters: accents go, and so does any other script.
    return unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode("ascii")


def _shape(cleaned: str) -> re.Match[str] | None:
    """The day-month-year or month-day-year match of text already cleaned by `clean_text`."""
    # Both shapes end in a four-digit year: most titles and summaries stop here. Folding turns each ASCII
    # character into itself, lowercased, so an ASCII ending tells before folding; folded text is all
    # ASCII, with no line break for "$" to match before.
    ending = cleaned[-4:]
    if ending.isascii() and not ending.isdigit():
        return None
    folded = _fold(cleaned)
    if not folded[-4:].isdigit():
        return None
    for pattern in (_DAY_MONTH_YEAR, _MONTH_DAY_YEAR):
        match = pattern.match(folded)
        if match and (match["weekday"] is None or match["weekday"] in WEEKDAYS):
            return match
    return None


# Type labels and dates recur down a listing, so their answers are kept; titles pass through once.
@functools.lru_cache(maxsize=1024)
def looks_like_date(text: str) -> bool:
    """Whether `text` is shaped like a date (day, month word, year; or ISO), even if it is not a valid one.

    The adapters use it to tell a mistyped date line ("31 Febuary 2021") from a title.
    """
    cleaned = clean_text(text)
    return _shape(cleaned) is not None or _ISO.match(cleaned) is not None or _DOTTED.match(cleaned) is not None


def parse_date(text: str, tz: tzinfo) -> datetime:
    """The datetime a page's date text means; a date without a time is midnight in `tz`.

    Reads day-month-year in English, French and Spanish (any case, with or without accents, with an
    optional weekday, "1er", "de"), "January 10, 2022", "29.10.2021", and ISO 8601 (a `<time datetime>` value);
    an ISO value with an offset keeps its instant and is expressed in `tz`.
    Raises ValueError saying what is wrong.
    """
    cleaned = clean_text(text)
    if _ISO.match(cleaned):
        try:
            value = datetime.fromisoformat(cleaned.replace(",", "."))
        except ValueError as exc:
            raise ValueError(f'"{cleaned}" is not a valid date: {exc}') from None
        value = value.replace(tzinfo=tz) if value.tzinfo is None else value
        _check_year(cleaned, value.year)
        try:
            return value.astimezone(tz)
        except OverflowError:
            raise ValueError(f'"{cleaned}" is too close to the ends of the calendar') from None
    year, month, day = _calendar_day(cleaned)
    try:
        return datetime(year, month, day, tzinfo=tz)
    except ValueError:
        if not 1 <= month <= 12:
            raise ValueError(f'"{cleaned}": there is no month {month}') from None
        raise ValueError(f'"{cleaned}": there is no day {day} in that month') from None


@functools.lru_cache(maxsize=1024)
def _calendar_day(cleaned: str) -> tuple[int, int, int]:
    """The year, month and day a day-month-year text names, read once: a listing repeats its dates."""
    if dotted := _DOTTED.match(cleaned):
        year, month, day = int(dotted["year"]), int(dotted["month"]), int(dotted["day"])
    else:
        match = _shape(cleaned)
        if match is None:
            raise ValueError(f'"{cleaned}" is not {EXPECTED}')
        month_word = match["month"]
        if month_word not in MONTHS:
            raise ValueError(f'"{cleaned}": "{month_word}" is not a month name in English, French or Spanish')
        year, month, day = int(match["year"]), MONTHS[month_word], int(match["day"])
    _check_year(cleaned, year)
    return year, month, day


def _check_year(text: str, year: int) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f'"{text}": the year {year} is not between {FIRST_YEAR} and {LAST_YEAR}')


def split_type_date(text: str) -> tuple[str, str] | None:
    """ "News | 10 January 2022" → ("News", "10 January 2022"); None when the line is not of that form.

    The date part is returned unparsed so that a mistyped date is reported rather than mistaken for a title.
    """
    if text.count("|") != 1:
        return None
    label, when = (clean_text(part) for part in text.split("|"))
    if not label or len(label) > TYPE_MAX or not when or len(when) > 40 or not any(ch.isdigit() for ch in when):
        return None
    return label, when


# "Published on 2 June 2022", "Publié le 3 mars 2021", "Publicado el 2 de febrero de 2023", "Fecha: …": words
# some pages print before an item's or a page's date.
_DATE_PREFIX = re.compile(
    r"^(?:(?:first\s+)?published|posted|dated?|publication\s+date|date\s+(?:of|de)\s+publication"
    r"|publi[ée]e?|mis\s+en\s+ligne|publicad[oa]|fecha(?:\s+de\s+publicaci[oó]n)?)"
    r"(?:\s+(?:on|le|el))?\s*:?\s+(?=\d|[^\W\d_]+\.?,?\s+\d)",
    re.IGNORECASE,
)


def strip_date_prefix(text: str) -> str:
    """ "Published on 2 June 2022" → "2 June 2022"; text without such words before a day or month is returned as it is.

    The rest is not checked: callers go on to ask whether it is a date.
    """
    match = _DATE_PREFIX.match(text)
    return text[match.end() :] if match else text


# "February 2024", "février 2024", "febrero de 2024": a heading over the items of one month.
_MONTH_YEAR = re.compile(rf"^(?P<month>{_WORD})\.?,?\s+(?:de\s+|del\s+)?(?P<year>\d{{4}})$")


def is_month_heading(text: str) -> bool:
    """Whether a line is a month and a year and nothing else, as listings print over each month's items."""
    cleaned = clean_text(text)
    if not cleaned[-4:].isdigit() or len(cleaned) > 30:
        return False
    match = _MONTH_YEAR.match(_fold(cleaned))
    return match is not None and match["month"] in MONTHS and FIRST_YEAR <= int(match["year"]) <= LAST_YEAR


def split_date_place(text: str) -> tuple[str, str] | None:
    """ "01 June 2022, Vientiane, Lao PDR" → ("01 June 2022", "Vientiane, Lao PDR"); "02 June 2022," → (…, "").

    None when the text does not open with a date followed by a comma. The date is returned unparsed,
    like split_type_date's, so that a mistyped one is reported.
    """
    start = text.find(",")
    while start != -1:
        date = text[:start].rstrip()
        # Only a prefix ending in a year can be a date: most lines with commas are titles and stop here.
        if date[-4:].isdigit() and looks_like_date(date):
            return clean_text(date), clean_text(text[start + 1 :])
        start = text.find(",", start + 1)
    return None
