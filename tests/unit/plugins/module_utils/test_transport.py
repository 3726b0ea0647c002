# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""transport: file and TCP round trips, failures that must leave nothing behind, bad input."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils import qstream, transport
from ansible_collections.qkd.nfv.plugins.module_utils.transport import ReceiverRefusedError, TransportError

KEY = bytes(range(32))
MiB = 1 << 20
SIZES = [0, 1, MiB - 1, MiB, MiB + 1]


def sealer(key=KEY, key_id="key-1", **options):
    return qstream.StreamSealer(key, key_id, master_sae_id="sae-node1", **options)


def make_file(path, size):
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(os.urandom(min(left, 4 * MiB)))
            left -= min(left, 4 * MiB)
    return path


def sha256(path):
    return transport.file_sha256(path)


def leftovers(directory):
    return [name for name in os.listdir(directory) if name.endswith(".part")]


class Receiver(threading.Thread):
    """receive_tcp in a thread; .result is the Received or the exception."""

    def __init__(self, dest, key=KEY, listener=None, **options):
        super().__init__(daemon=True)
        self.listener = listener or transport.listen("127.0.0.1", 0)
        self.port = self.listener.getsockname()[1]
        self.dest, self.options, self.result = dest, options, None
        self.key_calls = []

        def key_for(header):
            self.key_calls.append(header.key_ids)
            return [key]
        self.key_for = key_for
        self.start()

    def run(self):
        try:
            self.result = transport.receive_tcp(self.listener, self.dest, self.key_for,
                                                **dict({"timeout": 30}, **self.options))
        except Exception as exc:  # pylint: disable=broad-except
            self.result = exc

    def wait(self):
        self.join(60)
        assert not self.is_alive()
        return self.result


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    return make_file(str(tmp_path_factory.mktemp("big") / "image-100MiB"), 100 * MiB)


# --- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("size", SIZES)
def test_file_round_trip(tmp_path, size):
    src = make_file(str(tmp_path / "image"), size)
    sent = transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    received = transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "out"), lambda h: [KEY])
    assert sent.size == received.size == size
    assert sent.sha256 == received.sha256 == sha256(src) == sha256(str(tmp_path / "out"))
    assert sent.key_bits == received.key_bits == 256 and sent.key_ids == received.key_ids == ["key-1"]
    assert leftovers(str(tmp_path)) == []


@pytest.mark.parametrize("size", SIZES)
def test_tcp_round_trip(tmp_path, size):
    src = make_file(str(tmp_path / "image"), size)
    receiver = Receiver(str(tmp_path / "out"))
    sent = transport.send_tcp(src, "127.0.0.1", receiver.port, sealer(), timeout=30)
    received = receiver.wait()
    assert sent.changed and received.changed
    assert sent.sha256 == received.sha256 == sha256(src) == sha256(str(tmp_path / "out"))
    assert sent.wire_bytes > size and receiver.key_calls == [("key-1",)]


def test_100_mib_over_file_and_tcp(tmp_path, big_image):
    transport.send_file(big_image, str(tmp_path / "image.qstream"), sealer())
    transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "from-file"), lambda h: [KEY])
    receiver = Receiver(str(tmp_path / "from-tcp"))
    sent = transport.send_tcp(big_image, "127.0.0.1", receiver.port, sealer(), timeout=60)
    assert receiver.wait().sha256 == sent.sha256 == sha256(big_image)
    assert sha256(str(tmp_path / "from-file")) == sha256(str(tmp_path / "from-tcp")) == sent.sha256


def test_file_and_tcp_streams_are_the_same_format(tmp_path):
    # What the serial reference implementation writes, the pipelined receiver reads, and back.
    src = make_file(str(tmp_path / "image"), 3 * MiB + 5)
    with open(src, "rb") as fin, open(str(tmp_path / "serial.qstream"), "wb") as out:
        qstream.encrypt(fin, out, sealer())
    transport.receive_file(str(tmp_path / "serial.qstream"), str(tmp_path / "a"), lambda h: [KEY])
    transport.send_file(src, str(tmp_path / "piped.qstream"), sealer())
    with open(str(tmp_path / "piped.qstream"), "rb") as fin, open(str(tmp_path / "b"), "wb") as out:
        qstream.decrypt(fin, out, lambda h: [KEY])
    assert sha256(str(tmp_path / "a")) == sha256(str(tmp_path / "b")) == sha256(src)


def test_otp_over_tcp(tmp_path):
    src = make_file(str(tmp_path / "config"), 3000)
    keys = [("k1", os.urandom(1024)), ("k2", os.urandom(1024)), ("k3", os.urandom(1024))]
    listener = transport.listen("127.0.0.1", 0)
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", transport.receive_tcp(
        listener, str(tmp_path / "out"), lambda header: [pair[1] for pair in keys], timeout=30)))
    thread.start()
    sent = transport.send_tcp(src, "127.0.0.1", listener.getsockname()[1], qstream.OtpSealer(keys), timeout=30)
    thread.join(30)
    assert sent.mode == box["r"].mode == "otp" and sent.key_bits == 3 * 1024 * 8
    assert sha256(str(tmp_path / "out")) == sha256(src)


# --- idempotency -------------------------------------------------------------------------------

def test_already_present_consumes_no_key(tmp_path):
    src = make_file(str(tmp_path / "image"), 1000)
    transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    os.link(src, str(tmp_path / "out"))
    calls = []
    received = transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "out"),
                                      lambda h: calls.append(h) or [KEY], expected_sha256=sha256(src))
    assert not received.changed and calls == [] and received.key_bits == 0


def test_announced_sha256_lets_the_tcp_receiver_answer_present(tmp_path):
    src = make_file(str(tmp_path / "image"), 5 * MiB)
    os.link(src, str(tmp_path / "out"))
    receiver = Receiver(str(tmp_path / "out"))
    digest = bytes.fromhex(sha256(src))
    sent = transport.send_tcp(src, "127.0.0.1", receiver.port, sealer(plaintext_sha256=digest), timeout=30)
    received = receiver.wait()
    assert not sent.changed and not received.changed and receiver.key_calls == []


def test_expected_sha256_mismatch_keeps_the_old_file(tmp_path):
    src = make_file(str(tmp_path / "image"), 1000)
    transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    make_file(str(tmp_path / "out"), 10)
    before = sha256(str(tmp_path / "out"))
    with pytest.raises(TransportError) as info:
        transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "out"), lambda h: [KEY],
                               expected_sha256="0" * 64)
    assert info.value.details == {"reason": "checksum_mismatch", "option": "sha256"}
    assert sha256(str(tmp_path / "out")) == before and leftovers(str(tmp_path)) == []


def test_a_stated_sha256_is_verified_by_the_receiver(tmp_path):
    # The sender states the catalogue's SHA-256 instead of hashing; the receiver hashes and agrees.
    src = make_file(str(tmp_path / "image"), 3 * MiB + 7)
    receiver = Receiver(str(tmp_path / "out"))
    sent = transport.send_tcp(src, "127.0.0.1", receiver.port, sealer(), timeout=30, sha256=sha256(src).upper())
    received = receiver.wait()
    assert sent.changed and received.changed
    assert sent.sha256 == received.sha256 == sha256(str(tmp_path / "out")) == sha256(src)


@pytest.mark.parametrize("via", ["file", "tcp"])
def test_a_file_that_is_not_its_stated_sha256_is_never_installed(tmp_path, via):
    src = make_file(str(tmp_path / "image"), MiB + 3)
    catalogued = hashlib.sha256(b"the image the catalogue recorded").hexdigest()
    dest = str(tmp_path / "out")
    if via == "file":
        transport.send_file(src, str(tmp_path / "image.qstream"), sealer(), sha256=catalogued)
        with pytest.raises(qstream.QstreamError) as info:
            transport.receive_file(str(tmp_path / "image.qstream"), dest, lambda h: [KEY])
        message, reason = info.value.msg, info.value.details["reason"]
    else:
        receiver = Receiver(dest)
        with pytest.raises(ReceiverRefusedError) as info:
            transport.send_tcp(src, "127.0.0.1", receiver.port, sealer(), timeout=30, sha256=catalogued)
        assert isinstance(receiver.wait(), qstream.QstreamError)
        message, reason = info.value.msg, info.value.details["reason"]
    assert reason == "checksum_mismatch"
    assert sha256(src) in message and catalogued in message and "catalogue" in message
    assert not os.path.exists(dest) and leftovers(str(tmp_path)) == []


# --- failures leave nothing behind -------------------------------------------------------------

SENDER = """
import os, sys
from ansible_collections.qkd.nfv.plugins.module_utils import qstream, transport
transport.send_tcp(sys.argv[1], "127.0.0.1", int(sys.argv[2]),
                   qstream.StreamSealer(bytes.fromhex(os.environ["TEST_KEY"]), "key-1"), timeout=30)
"""

RECEIVER = """
import os, sys
from ansible_collections.qkd.nfv.plugins.module_utils import transport
listener = transport.listen("127.0.0.1", 0)
print(listener.getsockname()[1], flush=True)
transport.receive_tcp(listener, sys.argv[1], lambda h: [bytes.fromhex(os.environ["TEST_KEY"])], timeout=30)
"""


def python(script, *args):
    env = dict(os.environ, TEST_KEY=KEY.hex(), PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.Popen([sys.executable, "-c", script] + list(args), env=env,  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, text=True)


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


def test_killed_sender_leaves_no_file_and_the_rerun_succeeds(tmp_path):
    fifo = str(tmp_path / "slow-source")
    os.mkfifo(fifo)
    receiver = Receiver(str(tmp_path / "out"))
    sender = python(SENDER, fifo, str(receiver.port))
    with open(fifo, "wb", buffering=0) as source:
        source.write(os.urandom(5 * MiB))  # the sender is now mid-stream, waiting for more
        wait_for(lambda: any(os.path.getsize(str(tmp_path / n)) for n in leftovers(str(tmp_path))),
                 "the receiver to write verified chunks")
        sender.send_signal(signal.SIGKILL)
        sender.wait()
    error = receiver.wait()
    assert isinstance(error, (qstream.TruncatedError, TransportError)), error
    assert not os.path.exists(str(tmp_path / "out")) and leftovers(str(tmp_path)) == []
    src = make_file(str(tmp_path / "image"), 5 * MiB)
    receiver = Receiver(str(tmp_path / "out"))
    transport.send_tcp(src, "127.0.0.1", receiver.port, sealer(), timeout=30)
    assert receiver.wait().sha256 == sha256(src) == sha256(str(tmp_path / "out"))


def test_killed_receiver_leaves_a_part_the_next_receiver_removes(tmp_path):
    fifo = str(tmp_path / "slow-source")
    os.mkfifo(fifo)
    receiver = python(RECEIVER, str(tmp_path / "out"))
    port = int(receiver.stdout.readline())
    sender = python(SENDER, fifo, str(port))
    with open(fifo, "wb", buffering=0) as source:
        source.write(os.urandom(3 * MiB))
        wait_for(lambda: leftovers(str(tmp_path)), "the receiver's temporary file")
        receiver.send_signal(signal.SIGKILL)
        receiver.wait()
    sender.wait()
    assert len(leftovers(str(tmp_path))) == 1  # SIGKILL cannot be cleaned up after ...
    src = make_file(str(tmp_path / "image"), 1000)
    transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "out"), lambda h: [KEY])
    assert leftovers(str(tmp_path)) == []  # ... but the next receiver of that file removes it


def test_wrong_key_is_refused_at_both_ends(tmp_path):
    src = make_file(str(tmp_path / "image"), 3 * MiB)
    receiver = Receiver(str(tmp_path / "out"), key=bytes(32))
    with pytest.raises(ReceiverRefusedError, match="wrong key") as info:
        transport.send_tcp(src, "127.0.0.1", receiver.port, sealer(), timeout=30)
    assert info.value.details["reason"] == "wrong_key"
    assert isinstance(receiver.wait(), qstream.WrongKeyError)
    assert os.listdir(str(tmp_path)) == ["image"]


def test_refusal_reaches_a_sender_of_a_large_stream(tmp_path, big_image):
    # The receiver refuses after the header; the sender is mid-way through 100 MiB and must
    # still learn why, not just see a reset connection.
    receiver = Receiver(str(tmp_path / "out"), key=bytes(32))
    with pytest.raises(ReceiverRefusedError, match="wrong_key"):
        transport.send_tcp(big_image, "127.0.0.1", receiver.port, sealer(), timeout=30)
    receiver.wait()
    assert os.listdir(str(tmp_path)) == []


def raw_send(port, blob):
    """A sender that is not ours: send bytes, half-close, return the receiver's answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(blob)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        while part := sock.recv(65536):
            answer += part
    return answer


def test_tampered_stream_over_tcp_is_refused_with_the_reason(tmp_path):
    src = make_file(str(tmp_path / "image"), 2 * MiB)
    transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    with open(str(tmp_path / "image.qstream"), "rb") as fin:
        blob = bytearray(fin.read())
    blob[len(blob) // 2] ^= 1
    receiver = Receiver(str(tmp_path / "out"))
    answer = raw_send(receiver.port, bytes(blob))
    assert answer.startswith(b"QACK\x02") and b"tampered" in answer
    assert isinstance(receiver.wait(), qstream.TamperedError)
    assert not os.path.exists(str(tmp_path / "out")) and leftovers(str(tmp_path)) == []


def test_not_a_qstream_over_tcp_consumes_no_key(tmp_path):
    receiver = Receiver(str(tmp_path / "out"))
    assert b"not_qstream" in raw_send(receiver.port, b"GET / HTTP/1.0\r\n\r\n")
    assert isinstance(receiver.wait(), qstream.NotQstreamError) and receiver.key_calls == []


def test_an_acknowledgement_without_the_key_is_rejected(tmp_path):
    # A man in the middle can swallow the stream and say "installed", but cannot prove the key.
    src = make_file(str(tmp_path / "image"), 1000)
    listener = socket.create_server(("127.0.0.1", 0))

    def impostor():
        conn = listener.accept()[0]
        with conn:
            while conn.recv(65536):
                pass
            body = struct.pack("!Q", 1000) + bytes.fromhex(sha256(src)) + bytes(32)
            conn.sendall(struct.pack("!4sBH", b"QACK", 0, len(body)) + body)
    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    with pytest.raises(TransportError, match="does not prove the key") as info:
        transport.send_tcp(src, "127.0.0.1", listener.getsockname()[1], sealer(), timeout=30)
    assert info.value.details["reason"] == "confirmation"
    thread.join(10)
    listener.close()


def test_receiver_that_vanishes_is_reported(tmp_path):
    src = make_file(str(tmp_path / "image"), 1000)
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up():
        listener.accept()[0].close()
    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    with pytest.raises(TransportError, match="lost before it confirmed") as info:
        transport.send_tcp(src, "127.0.0.1", listener.getsockname()[1], sealer(), timeout=30)
    assert info.value.details["reason"] == "connection"
    listener.close()


def test_sender_waits_for_a_receiver_that_starts_late(tmp_path):
    src = make_file(str(tmp_path / "image"), 1000)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("sent", transport.send_tcp(
        src, "127.0.0.1", port, sealer(), timeout=30)), daemon=True)
    thread.start()
    time.sleep(0.5)
    receiver = Receiver(str(tmp_path / "out"), listener=transport.listen("127.0.0.1", port))
    thread.join(30)
    assert receiver.wait().sha256 == box["sent"].sha256 == sha256(src)


# --- bad input -----------------------------------------------------------------------------------

def test_port_in_use_names_the_option():
    first = transport.listen("127.0.0.1", 0)
    with pytest.raises(TransportError, match="already in use") as info:
        transport.listen("127.0.0.1", first.getsockname()[1])
    assert info.value.details == {"reason": "port_in_use", "option": "port"}
    first.close()


def test_receiver_timeout_without_a_sender(tmp_path):
    receiver = Receiver(str(tmp_path / "out"), timeout=0.3)
    error = receiver.wait()
    assert isinstance(error, TransportError) and error.details["option"] == "timeout"


def test_nobody_listening_names_the_option(tmp_path):
    src = make_file(str(tmp_path / "image"), 10)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError, match="is the receiver listening") as info:
        transport.send_tcp(src, "127.0.0.1", port, sealer(), timeout=0.5)
    assert info.value.details["option"] == "tcp"


@pytest.mark.parametrize("name", ["missing", "a-directory"])
def test_bad_src_names_the_option_and_writes_nothing(tmp_path, name):
    os.mkdir(str(tmp_path / "a-directory"))
    with pytest.raises(TransportError) as info:
        transport.send_file(str(tmp_path / name), str(tmp_path / "out.qstream"), sealer())
    assert info.value.details["option"] == "src" and name in info.value.msg
    assert sorted(os.listdir(str(tmp_path))) == ["a-directory"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_src_names_the_option(tmp_path):
    src = make_file(str(tmp_path / "image"), 10)
    os.chmod(src, 0)
    with pytest.raises(TransportError, match="cannot read") as info:
        transport.send_file(src, str(tmp_path / "out.qstream"), sealer())
    assert info.value.details["option"] == "src"


def test_missing_dest_directory_names_the_option_and_takes_no_key(tmp_path):
    src = make_file(str(tmp_path / "image"), 10)
    transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    calls = []
    with pytest.raises(TransportError, match="does not exist") as info:
        transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "no" / "out"),
                               lambda h: calls.append(h) or [KEY])
    assert info.value.details == {"reason": "dest_dir", "option": "dest"} and calls == []


def test_not_a_qstream_file_consumes_no_key_and_leaves_nothing(tmp_path):
    src = make_file(str(tmp_path / "image.qcow2"), 5000)
    calls = []
    with pytest.raises(qstream.NotQstreamError):
        transport.receive_file(src, str(tmp_path / "out"), lambda h: calls.append(h) or [KEY])
    assert calls == [] and sorted(os.listdir(str(tmp_path))) == ["image.qcow2"]


def test_newer_version_is_refused_before_the_key(tmp_path):
    src = make_file(str(tmp_path / "image"), 10)
    transport.send_file(src, str(tmp_path / "image.qstream"), sealer())
    with open(str(tmp_path / "image.qstream"), "r+b") as qs:
        qs.seek(8)
        qs.write(b"\x02")
    calls = []
    with pytest.raises(qstream.UnsupportedFormatError, match="upgrade"):
        transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "out"),
                               lambda h: calls.append(h) or [KEY])
    assert calls == [] and not os.path.exists(str(tmp_path / "out"))


def test_no_space_is_found_before_the_key(tmp_path):
    src = make_file(str(tmp_path / "image"), 10)
    sealer_ = sealer(plaintext_size=1 << 62)  # announces more than any disk holds
    with open(src, "rb") as fin, open(str(tmp_path / "image.qstream"), "wb") as out:
        out.write(sealer_.header.raw)
        fin.read()
    calls = []
    with pytest.raises(TransportError, match="free") as info:
        transport.receive_file(str(tmp_path / "image.qstream"), str(tmp_path / "out"),
                               lambda h: calls.append(h) or [KEY])
    assert info.value.details["reason"] == "no_space" and calls == []


def test_a_source_that_changes_size_is_refused_by_the_sender(tmp_path):
    src = make_file(str(tmp_path / "image"), 3 * MiB)
    with pytest.raises(TransportError, match="changed while it was sent") as info:
        transport.send_file(src, str(tmp_path / "image.qstream"), sealer(plaintext_size=3 * MiB + 1))
    assert info.value.details["option"] == "src" and sorted(os.listdir(str(tmp_path))) == ["image"]


def test_file_sha256():
    assert transport.file_sha256("/nonexistent/file") is None
    assert transport.file_sha256(__file__) == hashlib.sha256(open(__file__, "rb").read()).hexdigest()
