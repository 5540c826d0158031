"""Generic article extraction (trafilatura) of a followed page that has no shape of the site's own."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime

import lxml.html
from lxml import etree
from lxml.html import HtmlElement

from feeds.adapters.common import clean_text, html_tree
from feeds.errors import SourceError
from feeds.model import Author, Document
from feeds.sanitize import sanitize_html

_SRC = re.compile(r'src="[^"]+"')


@dataclass(frozen=True, slots=True, kw_only=True)
class Extracted:
    """What a followed page says: its headline, standfirst, body (sanitized HTML), people and date."""

    title: str = ""
    summary: str = ""
    content_html: str = ""
    authors: tuple[Author, ...] = ()
    contributors: tuple[Author, ...] = ()
    published: datetime | None = None


def extract_article(doc: Document, source: str) -> Extracted:
    """The main text, headline and authors of an HTML page, cleaned and with absolute links; SourceError if none."""
    import trafilatura  # slow to import, and only sources that follow their items need it

    text = doc.text()
    html_tree(text, source, doc.url)  # what lxml cannot read is a SourceError, as for every page adapter
    try:
        body = trafilatura.extract(
            text, url=doc.url, output_format="html", include_images=True, include_links=True, favor_recall=True
        )
        meta = trafilatura.extract_metadata(text, default_url=doc.url)
    # trafilatura is a foreign library fed any HTML the web serves: whatever it raises is this page's failure.
    except Exception as exc:
        raise SourceError(source, f"{doc.url}: cannot extract the article: {exc or type(exc).__name__}") from exc
    if not body:
        raise SourceError(source, f"{doc.url}: no article text found")
    title = clean_text(meta.title or "") if meta is not None else ""
    content = sanitize_html(_without_headline(body, title), doc.url)
    if not content:
        raise SourceError(source, f"{doc.url}: no article text found")
    image = sanitize_html(f'<img src="{html.escape(meta.image or "")}" alt="">', doc.url) if meta is not None else ""
    if (src := _src(image)) and src not in content:
        content = f"<figure>{image}</figure>{content}"  # the page's lead picture (og:image), which its text leaves out
    names = (meta.author or "") if meta is not None else ""
    authors = tuple(Author(name=n) for n in (clean_text(part) for part in names.split(";")) if n)
    return Extracted(title=title, content_html=content, authors=authors)


def _src(img: str) -> str:
    """The src="…" of one sanitized <img>, as written in the content; "" when the cleaning dropped it."""
    found = _SRC.search(img)
    return found.group(0) if found else ""


def _without_headline(fragment: str, title: str) -> str:
    """The extracted body without its <h1>: the headline is the entry's title, not a line of its content."""
    try:
        root = lxml.html.fromstring(fragment)
    except (etree.LxmlError, ValueError):
        return fragment
    for h1 in list(root.iter("h1")):
        if not isinstance(h1, HtmlElement) or h1.getparent() is None:
            continue
        if not title or clean_text(h1.text_content()) == title:
            h1.drop_tree()
    body = next(root.iter("body"), root)
    inner = html.escape(body.text or "", quote=False) + "".join(
        etree.tostring(child, encoding="unicode") for child in body
    )
    return inner
