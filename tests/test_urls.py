"""Making URLs absolute and valid: what is escaped, what is kept as written, what is dropped."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds.urls import iri, web_url

BASE = "https://harbour.example.net/notices/feed.xml"
# RFC 3987 says which characters an IRI holds; these are the ones a feed's URLs come with.
IRI_PUNCTUATION = set("-._~:/?#@!$&'()*+,;=%")


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("annual report.pdf", "https://harbour.example.net/notices/annual%20report.pdf"),
        (
            "/marché/quai sud?jour=samedi matin",
            "https://harbour.example.net/march%C3%A9/quai%20sud?jour=samedi%20matin",
        ),
        ("https://harbour.example.net/notice[7]|quai", "https://harbour.example.net/notice%5B7%5D%7Cquai"),
        ("https://harbour.example.net/a#b#c", "https://harbour.example.net/a#b%23c"),
        ("https://harbour.example.net/100%", "https://harbour.example.net/100%25"),
        ('pics/"a"<b>.jpg', "https://harbour.example.net/notices/pics/%22a%22%3Cb%3E.jpg"),
        ("//other.example.net/x y", "https://other.example.net/x%20y"),
        ("HTTPS://harbour.example.net/x", "https://harbour.example.net/x"),
        ("https://harbour.example.net/a\u200fb", "https://harbour.example.net/a%E2%80%8Fb"),  # a bidi control
    ],
)
def test_what_must_be_escaped_is(href: str, expected: str) -> None:
    assert web_url(href, BASE) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://harbour.example.net/notices/8",
        "https://harbour.example.net/café/étal",  # an IRI: letters beyond ASCII stay as written
        "http://Harbour.example.net",  # no path, a capital in the host: valid, so an id made of it stays
        "https://harbour.example.net/a%20b?q=%C3%A9#top",
        "https://[2001:db8::1]/x",
    ],
)
def test_a_valid_url_is_kept_as_written(url: str) -> None:
    assert web_url(url, BASE) == url


@pytest.mark.parametrize(
    "href",
    ["https://:443/x", "http:///", "https:///path", "http://", "https://exa mple.net/", "http://[::1", "javascript:x",
     "mailto:board@harbour.example.net", "file:///etc/passwd", ""],
)  # fmt: skip
def test_what_cannot_be_a_web_address_is_dropped(href: str) -> None:
    assert web_url(href, BASE) == ""


def test_relative_addresses_need_a_web_base() -> None:
    assert web_url("x y.html") == ""
    assert web_url("x y.html", "file:///srv/feeds/feed.xml") == ""


def test_other_schemes_when_asked_for() -> None:
    schemes = {"http", "https", "mailto"}
    assert web_url("mailto:the board@harbour.example.net", BASE, schemes) == "mailto:the%20board@harbour.example.net"


def test_ids_that_are_not_web_addresses() -> None:
    assert iri("urn:uuid:2f1b6a0e-4c4e-4d1a-9a57-3c1f7d3b0e11") == "urn:uuid:2f1b6a0e-4c4e-4d1a-9a57-3c1f7d3b0e11"
    assert iri("tag:harbour.example.net,2024:notice 8|a") == "tag:harbour.example.net,2024:notice%208%7Ca"


@settings(max_examples=300, deadline=None)
@given(
    href=st.text(max_size=30).map(lambda tail: "https://harbour.example.net/" + tail) | st.text(max_size=30),
    base=st.sampled_from([BASE, "", "http://[::1]/", "file:///srv/feed.xml"]),
)
def test_every_result_is_a_valid_address_or_nothing(href: str, base: str) -> None:
    url = web_url(href, base)
    if not url:
        return
    assert url.startswith(("http://", "https://"))
    assert url.isprintable() and not any(char.isspace() for char in url)
    assert all(char.isalnum() or char in IRI_PUNCTUATION or char in "[]" or ord(char) >= 0xA0 for char in url), url
    after_host = url.split("//", 1)[1].partition("/")[2]
    assert "[" not in after_host and "]" not in after_host, url
    assert web_url(url) == url  # nothing left to escape
