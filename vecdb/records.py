"""The point record stored under S<uid><shard>p<label>: id, payload, text.

Format: u16 id_len, u32 payload_len, u32 text_len (0xFFFFFFFF = absent),
then the utf-8 id, the compact JSON payload and the utf-8 text. Vectors are
stored separately (S..v<label>) so hydrating search hits reads no vector.
"""
from __future__ import annotations

import json
import struct

HEAD = struct.Struct("<HII")
ABSENT = 0xFFFFFFFF
_loads = json.JSONDecoder().decode  # str in: skips json.loads' encoding sniffing


def encode(pid: bytes, payload: bytes | None, text: bytes | None) -> bytes:
    return b"".join((HEAD.pack(len(pid), ABSENT if payload is None else len(payload),
                               ABSENT if text is None else len(text)),
                     pid, payload or b"", text or b""))


def with_payload(raw: bytes, payload: bytes | None) -> bytes:
    """The record ``raw`` with its payload replaced; the id and text bytes are kept."""
    n_id, n_pay, n_text = HEAD.unpack_from(raw, 0)
    off = HEAD.size + n_id + (0 if n_pay == ABSENT else n_pay)
    return encode(raw[HEAD.size:HEAD.size + n_id], payload,
                  None if n_text == ABSENT else raw[off:off + n_text])


def load_json(raw: bytes | None) -> dict | None:
    return None if raw is None else _loads(raw.decode())


def decode(raw: bytes, with_payload: bool = True, with_text: bool = True,
           raw_payload: bool = False) -> tuple[str, dict | bytes | None, str | None]:
    """(id, payload, text); ``raw_payload``: the payload as its stored JSON bytes."""
    n_id, n_pay, n_text = HEAD.unpack_from(raw, 0)
    off = HEAD.size
    pid = raw[off:off + n_id].decode()
    if n_pay == ABSENT and n_text == ABSENT:
        return pid, None, None
    off += n_id
    payload = None
    if n_pay != ABSENT:
        if with_payload:
            payload = raw[off:off + n_pay] if raw_payload else load_json(raw[off:off + n_pay])
        off += n_pay
    text = None
    if with_text and n_text != ABSENT:
        text = raw[off:off + n_text].decode("utf-8", "surrogatepass")
    return pid, payload, text


def head(raw: bytes) -> tuple[bytes, bool]:
    """(the utf-8 id, plain): plain when the record holds neither a payload nor a text."""
    n_id, n_pay, n_text = HEAD.unpack_from(raw, 0)
    return raw[HEAD.size:HEAD.size + n_id], n_pay == ABSENT and n_text == ABSENT
