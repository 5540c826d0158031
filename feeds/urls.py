"""Web addresses as the feeds publish them: resolved and percent-encoded as the WHATWG URL standard does."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import quote, urljoin, urlsplit

from ada_url import URL

WEB = frozenset({"http", "https"})

# Besides letters and digits, what an IRI (RFC 3987) holds after its authority unescaped: RFC 3986's
# unreserved and reserved characters but "[" and "]", and "%" before two hex digits.
_SAFE_PATH = "-._~!$&'()*+,;=:@/"
_SAFE_QUERY = _SAFE_PATH + "?"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NO_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[/\\]{3}")
# RFC 3987's ucschar, less the spaces of Unicode (which \s refuses below): letters beyond ASCII stay as
# they are in an IRI.
_UCS = "\u00a1-\ud7ff\uf900-\ufdcf\ufdf0-\uffef\U00010000-\U000efffd"
_PART = rf"(?:(?!\s)[A-Za-z0-9\-._~!$&'()*+,;=:@/?{_UCS}]|%[0-9A-Fa-f]{{2}})*"
_VALID_AUTHORITY = re.compile(rf"(?:(?!\s)[A-Za-z0-9\-._~!$&'()*+,;=:@\[\]{_UCS}]|%[0-9A-Fa-f]{{2}})+")
_VALID_REST = re.compile(rf"{_PART}(?:#{_PART})?")
_VALID_IRI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:{_PART}(?:#{_PART})?")


def web_url(href: str, base: str = "", schemes: Collection[str] = WEB) -> str:
    """`href` made absolute against `base` and valid; "" when it cannot be (no host, a scheme not in `schemes`).

    A URL that already is a valid IRI is returned as the source wrote it, so an id made from it
    before stays the same. Any other is parsed as browsers parse it (the WHATWG URL standard, by
    the ada parser: spaces, quotes and letters beyond ASCII percent-encoded, a host in IDNA form),
    and what that standard leaves unescaped but an IRI may not hold ("[", "|", a "%" before no
    hex digits) is escaped too.
    """
    href = href.strip()
    if not href:
        return ""
    try:
        parsed = URL(href, base=base) if base else URL(href)
    except ValueError:
        return ""
    scheme = parsed.protocol.removesuffix(":")
    if scheme not in schemes or (scheme in WEB and not parsed.hostname):
        return ""
    if _NO_AUTHORITY.match(href):
        return ""  # "https:///path": the standard would take "path" for the host, which nobody meant
    try:
        joined = urljoin(base, href) if base else href
        parts = urlsplit(joined)
    except ValueError:  # an unclosed "[" in the host: only the parsed form is left
        return _escaped(parsed.href, scheme)
    if joined.startswith(f"{scheme}:") and _valid(joined, parts.netloc, scheme):
        return joined
    return _escaped(parsed.href, scheme)


def iri(text: str) -> str:
    """`text` (an absolute URI: "urn:…", "tag:…") with every character an IRI may not hold percent-encoded."""
    if _VALID_IRI.fullmatch(text) and text.isprintable():
        return text
    scheme, _, rest = text.partition(":")
    before, hashed, fragment = rest.partition("#")
    escaped = quote(before, safe=_SAFE_QUERY + "%") + hashed + quote(fragment, safe=_SAFE_QUERY + "%")
    return f"{scheme}:{_LONE_PERCENT.sub('%25', escaped)}"


def _valid(url: str, authority: str, scheme: str) -> bool:
    if not url.isprintable():  # format characters (bidi controls, RFC 3987 4.1), unassigned ones
        return False
    rest = url.partition(":")[2]
    if scheme in WEB:
        if not rest.startswith("//") or not _VALID_AUTHORITY.fullmatch(authority):
            return False
        rest = rest[2 + len(authority) :]
    return _VALID_REST.fullmatch(rest) is not None


def _escaped(href: str, scheme: str) -> str:
    """A URL as the WHATWG parser wrote it, with what an IRI may not hold after its authority escaped."""
    head, rest = f"{scheme}:", href[len(scheme) + 1 :]
    if rest.startswith("//"):  # the authority: a host the parser checked, a user and password it escaped
        end = min((i for i in (rest.find("/", 2), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        head, rest = head + rest[:end], rest[end:]
    before, hashed, fragment = rest.partition("#")
    path, asked, query = before.partition("?")
    tail = (
        quote(path, safe=_SAFE_PATH + "%")
        + asked
        + quote(query, safe=_SAFE_QUERY + "%")
        + hashed
        + quote(fragment, safe=_SAFE_QUERY + "%")
    )
    return head + _LONE_PERCENT.sub("%25", tail)
