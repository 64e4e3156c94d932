"""Reading the XML documents S3 requests carry (DeleteObjects, CompleteMultipartUpload, versioning).

The body is read through the S3 body iterator (its signature checked) up to
``xml.MAX_XML_BYTES`` and parsed by ``xml.parse`` (defusedxml; namespaces
stripped). Anything not shaped as the operation expects is ``MalformedXML``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from xml.etree.ElementTree import Element

from cargohold.errors import MalformedXML
from cargohold.s3 import xml


async def read_bytes(body: AsyncIterator[bytes]) -> bytes:
    raw = bytearray()
    async for chunk in body:
        raw += chunk
        if len(raw) > xml.MAX_XML_BYTES:
            raise MalformedXML(f"the XML body is larger than {xml.MAX_XML_BYTES} bytes")
    return bytes(raw)


def parse_document(raw: bytes, expected_root: str) -> Element:
    document = xml.parse(raw)
    if document.tag != expected_root:
        raise MalformedXML(f"the body's root element must be {expected_root}")
    return document


async def read_document(body: AsyncIterator[bytes], expected_root: str) -> Element:
    """The request's XML document, its root element checked."""
    return parse_document(await read_bytes(body), expected_root)


def elements(parent: Element, name: str) -> list[Element]:
    return [found for found in parent if found.tag == name]


def text_of(parent: Element, name: str) -> str | None:
    """The text of the one child ``name`` ("" when empty), None without one; twice is MalformedXML."""
    found = elements(parent, name)
    if not found:
        return None
    if len(found) > 1:
        raise MalformedXML(f"{name} appears more than once in {parent.tag}")
    return found[0].text or ""
