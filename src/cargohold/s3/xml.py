"""S3 XML: rendering answers with ``xml.etree``, parsing request bodies with ``defusedxml``.

Request bodies (DeleteObjects, CompleteMultipartUpload, versioning, ...) come
from clients, so they are parsed by defusedxml, which refuses entity
expansion and external references, and only after a size bound. Anything
that is not well-formed is ``MalformedXML``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as safe_et
from aiohttp import web
from defusedxml import DefusedXmlException

from cargohold.errors import MalformedXML

#: The namespace of every S3 answer document (errors excepted, as S3 itself does).
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
CONTENT_TYPE = "application/xml"
#: The largest XML body any operation takes (DeleteObjects with 1000 long keys is ~1.1 MB).
MAX_XML_BYTES = 2 * 1024 * 1024


def root(tag: str, namespace: bool = True) -> Element:
    element = Element(tag)
    if namespace:
        element.set("xmlns", S3_NS)
    return element


def child(parent: Element, tag: str, text: str | int | bool | None = None) -> Element:
    """Append ``<tag>text</tag>`` (booleans as ``true``/``false``) and return it."""
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = ("true" if text else "false") if isinstance(text, bool) else str(text)
    return element


def children(parent: Element, fields: Iterable[tuple[str, str | int | bool | None]]) -> None:
    for tag, text in fields:
        child(parent, tag, text)


def timestamp(when: datetime) -> str:
    """S3's ISO 8601 form with milliseconds: ``2026-01-01T00:00:00.000Z``."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def render(document: Element) -> bytes:
    return _DECLARATION.encode() + ET.tostring(document, encoding="utf-8")


# -- answers of many entries, written as text -----------------------------------------------
#
# A listing answers with thousands of elements; building them as an element tree and
# serialising it costs five times what joining escaped strings does (most of a 1,000-key
# ListObjectsV2). These write exactly what ``child`` and ``render`` would: text escaped as
# ElementTree escapes it (&, <, >), an element without text or children as ``<tag />``.


def leaf(tag: str, text: str | int | bool | None = None) -> str:
    """``<tag>text</tag>``, as :func:`child` renders (booleans as ``true``/``false``)."""
    value = ("true" if text else "false") if isinstance(text, bool) else "" if text is None else str(text)
    return f"<{tag}>{escape(value)}</{tag}>" if value else f"<{tag} />"


def branch(tag: str, *parts: str) -> str:
    """An element holding already rendered ``parts``."""
    return f"<{tag}>{''.join(parts)}</{tag}>" if parts else f"<{tag} />"


def text_response(tag: str, parts: Iterable[str], status: int = 200) -> web.Response:
    """An answer document whose root ``tag`` (in the S3 namespace) holds rendered ``parts``."""
    body = f'{_DECLARATION}<{tag} xmlns="{S3_NS}">{"".join(parts)}</{tag}>'
    return web.Response(status=status, body=body.encode(), content_type=CONTENT_TYPE)


def parse(body: bytes) -> Element:
    """A client's XML body as an element tree, namespaces stripped from tags; ``MalformedXML`` else."""
    if len(body) > MAX_XML_BYTES:
        raise MalformedXML(f"the XML body is larger than {MAX_XML_BYTES} bytes")
    try:
        document = safe_et.fromstring(body)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise MalformedXML(f"the XML body is not well-formed: {exc}") from None
    for element in document.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]
    return document


def xml_response(document: Element, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=render(document), content_type=CONTENT_TYPE, headers=headers)


def owner(parent: Element, name: str, tag: str = "Owner") -> Element:
    """An ``<Owner>``: S3 gives a canonical id and a display name; both are the user name here."""
    element = child(parent, tag)
    children(element, [("ID", name), ("DisplayName", name)])
    return element
