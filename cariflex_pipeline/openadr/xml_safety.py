"""Safe XML intake: no DOCTYPE, no entity declarations, no external entities, ever.

Every byte from a VTN (and the bundled sample feed) passes `safe_tree` before openleadr's parser sees it:
defusedxml refuses DTDs and entities outright, then lxml parses with entity resolution and network access off,
and the 2.0b schema shipped with openleadr validates the message.
"""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as defused_et
from defusedxml import DefusedXmlException
from lxml import etree

from cariflex_pipeline.openadr.errors import MalformedMessageError, UnsafeXmlError

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def safe_tree(data: bytes | str, what: str = "message") -> etree._Element:
    """Parse `data` as XML or raise UnsafeXmlError / MalformedMessageError naming `what`."""
    raw = _as_bytes(data)
    if not raw.strip():
        raise MalformedMessageError(f"{what}: empty XML document")
    try:
        defused_et.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise UnsafeXmlError(f"{what}: refused XML with a DTD or entities ({type(error).__name__})") from None
    except ParseError as error:
        raise MalformedMessageError(f"{what}: malformed XML ({error})") from None
    except (ValueError, LookupError) as error:  # expat: a declared encoding it cannot read (utf-7, utf-16 ...)
        raise MalformedMessageError(f"{what}: unsupported XML encoding ({error})") from None
    try:
        tree = etree.fromstring(raw, _PARSER)
    except (etree.XMLSyntaxError, ValueError, LookupError) as error:
        raise MalformedMessageError(f"{what}: malformed XML ({error})") from None
    docinfo = tree.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXmlError(f"{what}: refused XML with a DTD")
    return tree


def validate_20b_schema(tree: etree._Element, what: str = "message") -> None:
    """Validate against the OpenADR 2.0b schema bundled with openleadr."""
    from openleadr.messaging import XML_SCHEMA

    if not XML_SCHEMA.validate(tree):
        first = XML_SCHEMA.error_log.last_error
        raise MalformedMessageError(f"{what}: not a valid OpenADR 2.0b message ({first.message}, line {first.line})")
