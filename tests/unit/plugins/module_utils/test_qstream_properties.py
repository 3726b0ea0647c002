# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Properties: any flipped bit, truncation, chunk reorder or append is refused, and no file is left.

The receiver is transport.receive_file (the pipelined one the modules use), on small chunks so
that every example has several frames.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.qkd.nfv.plugins.module_utils import qstream, transport

KEY = bytes(range(32))
CHUNK = 32
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sealed(data):
    out = io.BytesIO()
    qstream.encrypt(io.BytesIO(data), out, qstream.StreamSealer(KEY, "key-1", chunk_size=CHUNK))
    return out.getvalue()


def split(blob):
    header = qstream.read_header(io.BytesIO(blob))
    pos, parts = len(header.raw), []
    while pos < len(blob):
        end = pos + 4 + (struct.unpack_from("!I", blob, pos)[0] & 0x7FFFFFFF) + qstream.TAG_BYTES
        parts.append(blob[pos:end])
        pos = end
    return header.raw, parts


def refused(blob):
    """Receive blob into an empty directory: it must fail with a qstream error and leave nothing."""
    with tempfile.TemporaryDirectory() as directory:
        src, dest = os.path.join(directory, "in.qstream"), os.path.join(directory, "out", "image")
        os.mkdir(os.path.dirname(dest))
        with open(src, "wb") as out:
            out.write(blob)
        try:
            transport.receive_file(src, dest, lambda header: [KEY])
        except qstream.QstreamError as exc:
            assert os.listdir(os.path.dirname(dest)) == [], "the receiver left a file behind"
            return exc
        raise AssertionError("a modified qstream was accepted")


def accepted(blob, data):
    with tempfile.TemporaryDirectory() as directory:
        src, dest = os.path.join(directory, "in.qstream"), os.path.join(directory, "image")
        with open(src, "wb") as out:
            out.write(blob)
        transport.receive_file(src, dest, lambda header: [KEY])
        with open(dest, "rb") as result:
            assert result.read() == data


images = st.binary(min_size=0, max_size=6 * CHUNK)


@SETTINGS
@given(images)
def test_untouched_streams_are_accepted(data):
    accepted(sealed(data), data)


@SETTINGS
@given(images, st.data())
def test_any_flipped_bit_is_refused(data, draw):
    blob = bytearray(sealed(data))
    at = draw.draw(st.integers(0, len(blob) - 1))
    blob[at] ^= 1 << draw.draw(st.integers(0, 7))
    refused(bytes(blob))


@SETTINGS
@given(images, st.data())
def test_any_truncation_is_refused(data, draw):
    blob = sealed(data)
    refused(blob[:draw.draw(st.integers(0, len(blob) - 1))])


@SETTINGS
@given(images, st.binary(min_size=1, max_size=100))
def test_any_append_is_refused(data, tail):
    refused(sealed(data) + tail)


@SETTINGS
@given(st.binary(min_size=2 * CHUNK + 1, max_size=6 * CHUNK), st.data())
def test_any_reorder_of_frames_is_refused(data, draw):
    header, parts = split(sealed(data))
    order = draw.draw(st.permutations(range(len(parts))).filter(lambda p: list(p) != sorted(p)))
    refused(header + b"".join(parts[i] for i in order))


@SETTINGS
@given(st.binary(min_size=CHUNK + 1, max_size=6 * CHUNK), st.data())
def test_any_dropped_or_repeated_frame_is_refused(data, draw):
    header, parts = split(sealed(data))
    at = draw.draw(st.integers(0, len(parts) - 1))
    if draw.draw(st.booleans()):
        changed = parts[:at] + parts[at + 1:]
    else:
        changed = parts[:at + 1] + parts[at:]
    refused(header + b"".join(changed))


@SETTINGS
@given(images, st.binary(min_size=32, max_size=32).filter(lambda key: key != KEY))
def test_any_other_key_is_refused(data, key):
    blob = sealed(data)
    with tempfile.TemporaryDirectory() as directory:
        src, dest = os.path.join(directory, "in"), os.path.join(directory, "out", "image")
        os.mkdir(os.path.dirname(dest))
        with open(src, "wb") as out:
            out.write(blob)
        try:
            transport.receive_file(src, dest, lambda header: [key])
            raise AssertionError("accepted under another key")
        except qstream.WrongKeyError:
            assert os.listdir(os.path.dirname(dest)) == []
