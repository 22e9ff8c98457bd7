"""Turn a ``POST /api/search`` body into a search request, or a client error.

Accepted bodies: ``multipart/form-data`` with one query field (``image`` or ``audio`` file, or
``text``) plus optional ``modality`` (target: a gallery modality or ``all``), ``k`` and ``class``
(only items of that class); or ``application/json`` ``{"text": ..., "modality": ..., "k": ...,
"class": ...}``. Uploaded files stay in memory;
their client-side names are never used as paths.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email import errors, policy
from email.message import EmailMessage
from email.parser import BytesParser

QUERY_FIELDS = ("image", "audio", "text")
OPTION_FIELDS = ("modality", "k", "class")


class RequestError(Exception):
    """A bad request: ``status`` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SearchRequest:
    """A parsed search: the query (bytes for files, str for text), its modality, target, k and
    class filter (None: every class)."""

    query: bytes | str
    modality: str
    target: str
    k: int
    class_name: str | None = None


def _parse_k(raw: object, default: int) -> int:
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise RequestError(400, f"k must be an integer, got {raw!r}")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise RequestError(400, f"k must be an integer, got {str(raw)[:40]!r}") from None
    return value


def _multipart_fields(content_type: str, body: bytes) -> dict[str, bytes]:
    """Form field name -> raw bytes; file parts that a browser sends empty (no file chosen) are
    left out."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise RequestError(400, "the multipart body could not be parsed")
    if any(isinstance(d, errors.CloseBoundaryNotFoundDefect) for d in message.defects):
        raise RequestError(400, "the multipart body is incomplete (its closing boundary is missing)")
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None and not data:
            continue
        if name in fields:
            raise RequestError(400, f"form field {name!r} was sent twice")
        fields[str(name)] = data
    return fields


def _text(value: bytes, field: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, f"form field {field!r} is not UTF-8 text") from None


def parse_search(content_type: str, body: bytes, default_k: int = 10) -> SearchRequest:
    """Parse a search body (see the module docstring).

    Raises:
        RequestError: 400 for a body that is not a form / JSON object, no query or more than one,
            or a non-integer ``k``; 415 for another content type. Values (k range, target,
            emptiness of text, decodability of files) are the searcher's to check.
    """
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        fields = _multipart_fields(content_type, body)
        options = {key: _text(fields.pop(key), key) for key in OPTION_FIELDS if key in fields}
        if "text" in fields:
            fields["text"] = _text(fields["text"], "text")  # type: ignore[assignment]
    elif kind == "application/json":
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: deep nesting
            raise RequestError(400, "the JSON body could not be parsed") from None
        if not isinstance(data, dict):
            raise RequestError(400, "the JSON body must be an object")
        if "image" in data or "audio" in data:
            raise RequestError(400, "send image and audio queries as multipart/form-data files")
        fields = {"text": data["text"]} if "text" in data else {}
        if "text" in fields and not isinstance(fields["text"], str):
            raise RequestError(400, "JSON field 'text' must be a string")
        options = {key: data[key] for key in OPTION_FIELDS if key in data}
    else:
        raise RequestError(415, "send multipart/form-data (image, audio or text field) or JSON")
    given = [f for f in QUERY_FIELDS if f in fields]
    if not given:
        raise RequestError(400, "missing query: send an 'image' or 'audio' file or a 'text' field")
    if len(given) > 1:
        raise RequestError(400, f"send one query, not {' and '.join(given)}")
    target = options.get("modality") or "all"
    class_name = options.get("class") or None
    if not isinstance(target, str) or not isinstance(class_name, str | None):
        raise RequestError(400, f"{'modality' if not isinstance(target, str) else 'class'} "
                                "must be a string")
    return SearchRequest(fields[given[0]], given[0], target.strip(),
                         _parse_k(options.get("k"), default_k), class_name)
