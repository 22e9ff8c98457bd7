"""Parsing ``POST /api/search`` bodies into a search request, or a 4xx."""

from __future__ import annotations

import json

import pytest

from dcinet.app.serve.forms import RequestError, parse_search


def test_multipart_file_query_with_options(multipart):
    ctype, body = multipart({"image": ("../../etc/passwd", b"\x89PNG bytes\r\n--x"),
                             "modality": "audio", "k": " 7 "})
    request = parse_search(ctype, body)
    assert request.query == b"\x89PNG bytes\r\n--x" and request.modality == "image"
    assert (request.target, request.k) == ("audio", 7)


def test_multipart_text_defaults_and_empty_file_parts_are_ignored(multipart):
    ctype, body = multipart({"audio": ("", b""), "text": "crimson bar, é"})
    request = parse_search(ctype, body, default_k=10)
    assert (request.query, request.modality, request.target, request.k) == ("crimson bar, é", "text", "all", 10)


def test_json_text_query():
    body = json.dumps({"text": "olive warbler", "k": 3, "modality": "text"}).encode()
    request = parse_search("application/json", body)
    assert (request.query, request.modality, request.target, request.k) == ("olive warbler", "text", "text", 3)


def test_a_class_filter_in_either_body(multipart):
    form = multipart({"text": "a", "class": "Marsh_Warbler"})
    assert parse_search(*form).class_name == "Marsh_Warbler"
    assert parse_search(*multipart({"text": "a"})).class_name is None
    body = json.dumps({"text": "a", "class": "Marsh_Warbler"}).encode()
    assert parse_search("application/json", body).class_name == "Marsh_Warbler"
    with pytest.raises(RequestError, match="class must be a string"):
        parse_search("application/json", json.dumps({"text": "a", "class": 3}).encode())


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"k": "3"}, 400, "missing query"),
    ({"audio": ("a.wav", b"")}, 400, "missing query"),
    ({"text": "a", "image": ("a.png", b"x")}, 400, "one query"),
    ({"text": "a", "k": "ten"}, 400, "k must be an integer"),
    ({"text": "a", "k": "2.5"}, 400, "k must be an integer"),
])
def test_bad_forms(multipart, fields, status, message):
    with pytest.raises(RequestError, match=message) as info:
        parse_search(*multipart(fields))
    assert info.value.status == status


def test_non_utf8_text_duplicate_fields_and_other_bodies():
    boundary = "b0"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'.encode()
    with pytest.raises(RequestError, match="not UTF-8"):
        parse_search(f"multipart/form-data; boundary={boundary}", part + b"\xff\xfe\r\n--b0--\r\n")
    twice = part + b"a\r\n" + part + b"b\r\n--b0--\r\n"
    with pytest.raises(RequestError, match="sent twice"):
        parse_search(f"multipart/form-data; boundary={boundary}", twice)
    for body, message in [(b"{", "could not be parsed"), (b"[1]", "must be an object"),
                          (b'{"image": "x"}', "multipart"), (b'{"text": 3}', "must be a string")]:
        with pytest.raises(RequestError, match=message):
            parse_search("application/json", body)
    for ctype in ("multipart/form-data", "multipart/form-data; boundary=zz"):
        with pytest.raises(RequestError, match="multipart body could not be parsed"):
            parse_search(ctype, b"no parts here")
    with pytest.raises(RequestError) as info:
        parse_search("text/plain", b"hello")
    assert info.value.status == 415
