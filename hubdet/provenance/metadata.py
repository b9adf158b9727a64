"""Unsigned metadata read with Pillow: XMP / IPTC digital source type, EXIF software fields, generator text chunks.

Only the header is parsed (``Image.open``; pixels are never decoded), so PNG text chunks written after the image
data are not seen. XMP is parsed with the standard library after refusing DTDs (no entity expansion) and capping
its size: ``Image.getxmp()`` needs ``defusedxml`` and silently returns ``{}`` without it.
"""

from __future__ import annotations

import io
import logging
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from hubdet.provenance.generators import name_generator, parse_parameters, parse_text_chunks
from hubdet.provenance.record import GeneratorInfo, SourceTypeClaim, source_type_term

logger = logging.getLogger(__name__)

#: XMP packets larger than this are not parsed (real ones are a few KiB; a JPEG segment holds at most 64 KiB).
MAX_XMP_BYTES = 1 << 20
#: Longest software-field value kept in the record (characters).
MAX_FIELD = 1000

#: EXIF tags (IFD0) that name software, a device or a person.
EXIF_TAGS = {0x0131: "Software", 0x010F: "Make", 0x0110: "Model", 0x013B: "Artist", 0x010E: "ImageDescription",
             0x013C: "HostComputer", 0x8298: "Copyright"}
#: EXIF sub-IFD tags (Exif IFD 0x8769).
EXIF_SUB_TAGS = {0x9286: "UserComment", 0xA433: "LensMake"}
#: EXIF fields in which a generator's name counts as a claim (not Make/Model/Copyright/descriptions).
EXIF_GENERATOR_FIELDS = ("Software", "Artist", "HostComputer")

#: XMP properties recorded, by local name, and those in which a generator's name counts as a claim.
XMP_FIELDS = ("CreatorTool", "Software", "Make", "Model", "AISystemUsed", "AISystemVersionUsed",
              "AIPromptInformation", "AIPromptWriterName", "provenance")
XMP_GENERATOR_FIELDS = ("CreatorTool", "Software")

#: PNG text keys (besides the generator keys) recorded as they are.
TEXT_FIELDS = ("Software", "Source", "Author", "Title", "Comment", "Description", "Creation Time")

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"

PILLOW_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
               "GIF": "image/gif", "AVIF": "image/avif", "HEIF": "image/heif", "MPO": "image/jpeg"}


@dataclass
class Metadata:
    """What the unsigned metadata of one file holds."""

    format: str | None = None
    source_types: list[SourceTypeClaim] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)
    generators: list[GeneratorInfo] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _clip(text: str) -> str:
    text = text.strip().replace("\x00", "")
    return text if len(text) <= MAX_FIELD else text[:MAX_FIELD] + " [...]"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _prefixed(tag: str) -> str:
    """``{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType`` -> ``Iptc4xmpExt:DigitalSourceType``."""
    if tag.startswith("{"):
        uri, name = tag[1:].split("}", 1)
        known = {"Iptc4xmpExt": "Iptc4xmpExt", "ns.adobe.com/xap/1.0/": "xmp", "ns.adobe.com/tiff": "tiff",
                 "ns.adobe.com/exif": "exif", "purl.org/dc": "dc", "ns.adobe.com/photoshop": "photoshop"}
        for marker, prefix in known.items():
            if marker in uri:
                return f"{prefix}:{name}"
        return name
    return tag


def _value(element: ET.Element) -> str:
    resource = element.get(f"{_RDF}resource")
    if resource:
        return resource
    return " ".join(t.strip() for t in element.itertext() if t.strip())


def parse_xmp(packet: bytes | str, out: Metadata) -> None:
    """Digital source types and software-naming properties of an XMP packet (capped, no DTD, no entities)."""
    raw = packet.encode("utf-8", "replace") if isinstance(packet, str) else bytes(packet)
    out.checked.append("xmp")
    if len(raw) > MAX_XMP_BYTES:
        out.errors.append(f"XMP: the packet is {len(raw)} bytes, over the {MAX_XMP_BYTES}-byte cap; not parsed")
        return
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        out.errors.append("XMP: the packet declares a DTD or entities (never valid XMP); not parsed")
        return
    try:
        root = ET.fromstring(raw.rstrip(b"\x00 \r\n\t"))
    except ET.ParseError as exc:
        out.errors.append(f"XMP: malformed packet ({exc}); not parsed")
        return
    for element in root.iter():
        items = [(name, value) for name, value in element.attrib.items()]
        if len(element) or (element.text and element.text.strip()) or element.get(f"{_RDF}resource"):
            items.append((element.tag, None))
        for tag, value in items:
            name = _local(tag)
            if name.lower() == "digitalsourcetype":
                text = value if value is not None else _value(element)
                if text:
                    out.source_types.append(SourceTypeClaim(term=source_type_term(text), value=_clip(text),
                                                            where=f"XMP {_prefixed(tag)}"))
            elif name in XMP_FIELDS:
                text = value if value is not None else _value(element)
                if text:
                    key = f"xmp:{name}"
                    out.software[key] = _clip(text)
                    tool = name_generator(text) if name in XMP_GENERATOR_FIELDS else None
                    if name == "AISystemUsed":
                        tool = name_generator(text) or _clip(text)
                    if tool:
                        out.generators.append(GeneratorInfo(tool=tool, where=key))


def _user_comment(raw: Any) -> str:
    """EXIF ``UserComment``: an 8-byte charset prefix (``ASCII``, ``UNICODE``...), then the text."""
    if isinstance(raw, str):
        return raw
    data = bytes(raw)
    prefix, body = data[:8], data[8:]
    if prefix.startswith(b"UNICODE"):
        candidates = []
        for codec in ("utf-16-be", "utf-16-le"):
            text = body.decode(codec, "replace")
            candidates.append((sum(ch.isprintable() or ch.isspace() for ch in text[:200]), text))
        return max(candidates)[1]
    return body.decode("utf-8", "replace") if prefix[:5] in (b"ASCII", b"\x00\x00\x00\x00\x00") else data.decode(
        "utf-8", "replace")


def _read_exif(img: Any, out: Metadata) -> None:
    from PIL import Image

    exif = Image.Image.getexif(img)  # the base method: PNG's own decodes every pixel to look past the image data
    if not exif:
        return
    out.checked.append("exif")
    fields: dict[str, str] = {}
    for tag, name in EXIF_TAGS.items():
        if exif.get(tag) not in (None, "", b""):
            fields[name] = str(exif[tag]) if not isinstance(exif[tag], bytes) else exif[tag].decode("utf-8", "replace")
    sub = exif.get_ifd(0x8769)
    for tag, name in EXIF_SUB_TAGS.items():
        if sub.get(tag) not in (None, "", b""):
            fields[name] = _user_comment(sub[tag]) if name == "UserComment" else str(sub[tag])
    for name, text in fields.items():
        text = text.strip("\x00 ")
        if not text:
            continue
        if name == "UserComment":
            info = parse_parameters(text, "exif:UserComment")
            if info is not None:
                out.generators.append(info)
        out.software[f"exif:{name}"] = _clip(text)
        tool = name_generator(text) if name in EXIF_GENERATOR_FIELDS else None
        if tool:
            out.generators.append(GeneratorInfo(tool=tool, where=f"exif:{name}"))


def _read_texts(img: Any, out: Metadata) -> None:
    texts = {k: v for k, v in img.info.items() if isinstance(k, str) and isinstance(v, str)}
    comment = img.info.get("comment")
    if isinstance(comment, bytes) and comment.strip():
        texts.setdefault("Comment", comment.decode("utf-8", "replace"))
    if not texts:
        return
    prefix = (img.format or "file").lower()
    out.checked.append(f"{prefix}_text")
    generators = parse_text_chunks(texts, prefix)
    for key in TEXT_FIELDS:
        if texts.get(key, "").strip():
            out.software[f"{prefix}:{key}"] = _clip(texts[key])
    if not generators:  # no front-end's settings: a generator named in a software-like field still counts
        for key in ("Software", "Source", "Author") + (("Comment",) if prefix != "png" else ()):
            tool = name_generator(texts.get(key) or "")
            if tool:
                generators.append(GeneratorInfo(tool=tool, where=f"{prefix}:{key}"))
                break
    out.generators += generators


def read_metadata(data: bytes, where: str) -> Metadata:
    """Read the unsigned metadata of an encoded image; problems go to ``errors``, never raised."""
    from PIL import Image, UnidentifiedImageError

    out = Metadata()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # decompression-bomb warnings: pixels are never decoded here
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        out.errors.append(f"{where}: not an image file (format not recognised)")
        return out
    except Image.DecompressionBombError as exc:
        out.errors.append(f"{where}: image header refused as a possible decompression bomb ({exc})")
        return out
    except Exception as exc:  # noqa: BLE001  (untrusted bytes through every Pillow plugin: report, never crash)
        out.errors.append(f"{where}: corrupt image header ({type(exc).__name__}: {exc})")
        return out
    with img:
        out.format = img.format
        steps = (("XMP", lambda: _read_xmp(img, out)), ("EXIF", lambda: _read_exif(img, out)),
                 ("text chunks", lambda: _read_texts(img, out)))
        for label, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001  (malformed EXIF raises anything from struct.error to KeyError)
                logger.debug("%s: %s unreadable", where, label, exc_info=True)
                out.errors.append(f"{label}: unreadable ({type(exc).__name__}: {exc})")
    return out


def _read_xmp(img: Any, out: Metadata) -> None:
    packet = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if packet:
        parse_xmp(packet, out)
