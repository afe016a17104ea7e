"""The text of a document a user sent, read here, on this machine.

Text-like files (plain text, Markdown, CSV, JSON, source code: by MIME type or file
extension) are decoded directly: UTF-8 (with or without a BOM), then UTF-16 when a BOM
says so, else GB18030, which reads any byte sequence and is what a Chinese Windows
editor writes. A PDF is read with pypdf, a .docx with python-docx: both pure Python,
no system program. Zhipu's own file extraction is not used: it would be one more upload
of the user's file to a third party, a separate API with its own quota and file
lifetime, and a slower round trip for what a local library does in milliseconds.
Anything else gets a polite note (``UnsupportedDocument``).

Parsing is CPU work: ``extract_text`` runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["Document", "DocumentUnreadable", "UnsupportedDocument", "extract_text", "kind_of"]


# What a text-like file may be called or labelled; Telegram's mime_type comes from the
# sender's device and is often application/octet-stream, so the extension counts too.
_TEXT_MIMES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/x-sh",
        "application/javascript",
        "application/x-python",
        "application/sql",
        "application/x-ndjson",
    }
)
# fmt: off
_TEXT_EXTENSIONS = frozenset({
    ".txt", ".text", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".ndjson",
    ".xml", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".log", ".html", ".htm", ".css",
    ".py", ".pyi", ".js", ".mjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts", ".go", ".rs",
    ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".scala", ".sh", ".bash",
    ".zsh", ".ps1", ".sql", ".r", ".lua", ".pl", ".dart", ".vue", ".svelte", ".tex", ".srt",
    ".vtt", ".env",
})
# fmt: on
_PDF = "application/pdf"
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# A sample of a file with no telling name or type: text if it decodes and has no NULs.
_SNIFF_BYTES = 4096


class UnsupportedDocument(Exception):
    """A kind of file whose text the bot cannot read (images, archives, binaries...)."""


class DocumentUnreadable(Exception):
    """A file of a known kind that could not be read (damaged, encrypted, empty)."""


@dataclass(frozen=True, slots=True)
class Document:
    name: str
    text: str
    # pages for a PDF (None otherwise): the note about a cut may mention them
    pages: int | None = None


def kind_of(name: str | None, mime: str | None) -> str | None:
    """ "text", "pdf" or "docx" when the name or MIME type tells; None when unknown."""
    suffix = PurePosixPath((name or "").lower()).suffix
    mime = (mime or "").lower()
    if mime == _PDF or suffix == ".pdf":
        return "pdf"
    if mime == _DOCX or suffix == ".docx":
        return "docx"
    if mime.startswith("text/") or mime in _TEXT_MIMES or suffix in _TEXT_EXTENSIONS:
        return "text"
    return None


async def extract_text(data: bytes, *, name: str | None, mime: str | None) -> Document:
    """The text of ``data``; UnsupportedDocument or DocumentUnreadable otherwise."""
    return await asyncio.to_thread(_extract, data, name or "document", mime)


def _extract(data: bytes, name: str, mime: str | None) -> Document:
    kind = kind_of(name, mime)
    if kind is None and _looks_like_text(data):
        kind = "text"
    if kind == "pdf":
        text, pages = _pdf_text(data)
        return Document(name, _checked(text), pages)
    if kind == "docx":
        return Document(name, _checked(_docx_text(data)))
    if kind == "text":
        return Document(name, _checked(decode_text(data)))
    raise UnsupportedDocument(f"unsupported file type ({mime or 'no type'})")


def _checked(text: str) -> str:
    text = text.replace("\x00", "").strip()
    if not text:
        raise DocumentUnreadable("no text in the file")
    return text


def decode_text(data: bytes) -> str:
    """Bytes of a text file as text: UTF-8, UTF-16 by its BOM, else GB18030."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", "replace")


def _looks_like_text(data: bytes) -> bool:
    sample = data[:_SNIFF_BYTES]
    if not sample or b"\x00" in sample:
        return False
    try:
        # a multi-byte character may be cut at the sample's end
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _pdf_text(data: bytes) -> tuple[str, int]:
    # imported here: pypdf takes a while to import and most bots never see a PDF
    import pypdf
    from pypdf.errors import PyPdfError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentUnreadable("the PDF is password-protected")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentUnreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        # pypdf raises more than its own errors on damaged files
        raise DocumentUnreadable(f"PDF: {type(exc).__name__}") from None
    return "\n\n".join(text.strip() for text in pages if text.strip()), len(pages)


def _docx_text(data: bytes) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentUnreadable(f"DOCX: {type(exc).__name__}") from None
    lines = [paragraph.text for paragraph in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            lines.append("\t".join(cell.text for cell in row.cells))
    return "\n".join(lines)
