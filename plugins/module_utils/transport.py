# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moves qstreams: into a file, over TCP, or to an SFTP server; and back into a verified file.

The sender runs read -> hash -> encrypt -> write, the receiver read -> decrypt -> hash -> write,
each step in its own thread joined by queues, on a fixed pool of reused buffers: cryptography
and hashlib release the GIL, so the steps overlap and memory does not grow with the image.
Nothing unverified is ever installed: the receiver writes a temporary file in the destination
directory and renames it only after the final chunk, the size and the SHA-256 check out.

TCP session: the sender connects, sends the qstream, half-closes; the receiver answers with an
acknowledgement (`QACK`) once the image is installed, or with the reason it was refused.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import posixpath
import queue
import secrets
import select
import shutil
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from ansible_collections.qkd.nfv.plugins.module_utils import pqc, qstream, sftp
from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

WRITE_LIMIT = 256 << 10     # write() slices into the page cache: 1 MiB ones cost 2-5x the CPU (measured)
POOL_BUFFERS = 6             # per buffer kind and end: memory is O(chunk size), not O(image)
READ_BLOCK = 1 << 20
OPENSSH_SFTP_REQUEST = 261120  # 255 KiB: the largest write OpenSSH's sftp-server accepts

_ACK = struct.Struct("!4sBH")
_ACK_MAGIC = b"QACK"
ACK_INSTALLED, ACK_PRESENT, ACK_REFUSED = 0, 1, 2
_ACK_REFUSED_WAIT = 2.0      # how long a refusing receiver keeps reading, so the sender sees why


class TransportError(QkdNfvError):
    """A transfer failed or cannot start; `reason` and, when known, `option` say why."""

    def __init__(self, msg, reason="transport", **details):
        super().__init__(msg, reason=reason, **details)


class ReceiverRefusedError(TransportError):
    """The TCP receiver refused the stream and said why."""


@dataclass
class Sent:
    key_ids: list
    size: int
    sha256: str
    wire_bytes: int
    seconds: float
    key_bits: int
    mode: str
    changed: bool = True
    protected_by: tuple = ()
    manifest: dict | None = None       # the signed manifest, when the sender signed one


@dataclass
class Received:  # pylint: disable=too-many-instance-attributes
    dest: str
    key_ids: list
    size: int
    sha256: str
    seconds: float
    key_bits: int
    mode: str
    changed: bool = True
    confirmation: bytes = field(default=b"", repr=False)
    protected_by: tuple = ()
    master_sae_id: str | None = None
    manifest: dict | None = None       # the stream's manifest, verified or not (see signature_verified)
    manifest_path: str | None = None
    signature_verified: bool = False


# --- the pipeline ------------------------------------------------------------------------------

_END = object()
_ABORT = object()


class _Aborted(Exception):
    pass


class _Pipeline:
    """Stages in threads joined by queues; the first error stops every stage and is re-raised."""

    def __init__(self):
        self._queues, self._threads, self._errors = [], [], []

    def queue(self, items=()):
        channel = queue.SimpleQueue()
        for item in items:
            channel.put(item)
        self._queues.append(channel)
        return channel

    @staticmethod
    def get(channel):
        item = channel.get()
        if item is _ABORT:
            channel.put(_ABORT)
            raise _Aborted()
        return item

    def start(self, stage):
        thread = threading.Thread(target=self._guard, args=(stage,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def run(self, stage):
        """Run the last stage in this thread, wait for the others, re-raise the first error."""
        self._guard(stage)
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise self._errors[0]

    def _guard(self, stage):
        try:
            stage()
        except _Aborted:
            pass
        except BaseException as exc:  # pylint: disable=broad-except  # re-raised by run()
            self._errors.append(exc)
            for channel in self._queues:
                channel.put(_ABORT)


def _buffers(size):
    """The pool of one buffer kind: allocated once, reused for every chunk."""
    return [bytearray(size) for count in range(POOL_BUFFERS)]  # pylint: disable=unused-variable


def _write_all(write, view):
    """Call write() until all of view is written (it returns None, or the count it wrote)."""
    while view:
        count = write(view)
        view = view[len(view) if count is None else count:]


def _fd_writer(fd):
    """write() for a file descriptor, in pieces of at most WRITE_LIMIT bytes."""
    return lambda view: os.write(fd, view[:WRITE_LIMIT])


def seal(fin, sealer, write, sha256=None):
    """Stream the plaintext in fin (a binary file object) as a qstream into write().

    sha256: the plaintext's SHA-256 (hex) when it is already known, from a catalogue: the trailer
    states it and the plaintext is not hashed here. The receiver hashes what it decrypts and
    refuses a mismatch, so a file that differs from its catalogue entry is never installed.
    -> (plaintext size, SHA-256 hex, bytes written).
    """
    if sealer.mode == qstream.MODE_OTP:
        data = qstream.read_exact(fin, sealer.limit + 1)
        blob = sealer.seal(data)
        _write_all(write, memoryview(blob))
        return len(data), hashlib.sha256(data).hexdigest(), len(blob)
    pipe = _Pipeline()
    free_chunks = pipe.queue(_buffers(sealer.chunk_size))
    free_frames = pipe.queue(_buffers(sealer.frame_capacity))
    to_seal, to_write = pipe.queue(), pipe.queue()
    to_hash = to_seal if sha256 else pipe.queue()
    digest = None if sha256 else hashlib.sha256()
    totals = {"size": 0, "wire": 0}

    def read():
        while True:
            chunk = pipe.get(free_chunks)
            length = qstream.readinto_full(fin, chunk)
            if not length:
                to_hash.put(_END)
                return
            to_hash.put((chunk, length))

    def hash_():
        while (item := pipe.get(to_hash)) is not _END:
            digest.update(memoryview(item[0])[:item[1]])
            to_seal.put(item)
        to_seal.put(_END)

    def encrypt():
        while (item := pipe.get(to_seal)) is not _END:
            chunk, length = item
            frame = pipe.get(free_frames)
            to_write.put((frame, sealer.seal_into(memoryview(chunk)[:length], frame)))
            free_chunks.put(chunk)
            totals["size"] += length
        announced = sealer.header.plaintext_size
        if announced is not None and totals["size"] != announced:  # the receiver would refuse it too
            raise TransportError("src: the file changed while it was sent (%d bytes, %d when it was opened); "
                                 "send it again once it is complete" % (totals["size"], announced),
                                 reason="src_changed", option="src")
        trailer = sealer.trailer(totals["size"], bytes.fromhex(sha256) if sha256 else digest.digest())
        to_write.put((bytearray(trailer), len(trailer)))
        to_write.put(_END)

    def send():
        _write_all(write, memoryview(sealer.header.raw))
        totals["wire"] += len(sealer.header.raw)
        while (item := pipe.get(to_write)) is not _END:
            frame, length = item
            _write_all(write, memoryview(frame)[:length])
            totals["wire"] += length
            free_frames.put(frame)

    for stage in (read, encrypt) if sha256 else (read, hash_, encrypt):
        pipe.start(stage)
    pipe.run(send)
    return totals["size"], sha256.lower() if sha256 else digest.hexdigest(), totals["wire"]


@dataclass
class _Unsealed:
    size: int
    sha256: str
    confirmation: bytes = field(default=b"", repr=False)
    trailer: qstream.Trailer | None = None
    manifest: dict | None = None


def unseal(fin, header, keys, out_fd, kem_secret=None, approve=None):
    """Verify and decrypt the payload that follows `header` in fin into the file descriptor out_fd.

    keys: the QKD keys (none in mode pqc); kem_secret: the ML-KEM secret (modes hybrid and pqc);
    approve(header, trailer) -> manifest document, raising when the image must not be installed.
    Verified chunks may reach out_fd before a later one fails: write into a temporary file (see AtomicFile).
    """
    if header.mode == qstream.MODE_OTP:
        body = qstream.read_exact(fin, header.plaintext_size + qstream.TAG_BYTES + 1)
        data = qstream.otp_open(header, body, keys)
        _write_all(_fd_writer(out_fd), memoryview(data))
        return _Unsealed(len(data), hashlib.sha256(data).hexdigest())
    opener = qstream.StreamOpener(header, keys[0] if keys else None, kem_secret)
    pipe = _Pipeline()
    free_frames = pipe.queue(_buffers(opener.frame_capacity))
    free_chunks = pipe.queue(_buffers(header.chunk_size))
    to_open, to_hash, to_write = pipe.queue(), pipe.queue(), pipe.queue()
    digest = hashlib.sha256()
    result = {"size": 0, "trailer": None, "manifest": None}

    def receive():
        prefix = bytearray(qstream.FRAME_PREFIX_SIZE)
        while True:
            if qstream.readinto_full(fin, prefix) < len(prefix):
                raise qstream.TruncatedError("truncated: the qstream ended before its final chunk")
            length, final = opener.parse_prefix(prefix)
            frame = pipe.get(free_frames)
            body = memoryview(frame)[:length + qstream.TAG_BYTES]
            if qstream.readinto_full(fin, body) < len(body):
                raise qstream.TruncatedError("truncated: the qstream ended inside a chunk")
            to_open.put((frame, length, final))
            if final:
                break
        if fin.read(1):
            raise qstream.TamperedError("tampered: data follows the final chunk of the qstream")

    def decrypt():
        while True:
            frame, length, final = pipe.get(to_open)
            body = memoryview(frame)[:length + qstream.TAG_BYTES]
            if final:
                to_hash.put((_END, opener.open_trailer(body)))
                return
            chunk = pipe.get(free_chunks)
            opener.open_into(body, chunk)
            free_frames.put(frame)
            to_hash.put((chunk, length))

    def hash_():
        while (item := pipe.get(to_hash))[0] is not _END:
            digest.update(memoryview(item[0])[:item[1]])
            result["size"] += item[1]
            to_write.put(item)
        trailer = result["trailer"] = item[1]
        qstream.check_trailer(header, trailer, result["size"], digest.digest())
        if approve is not None:
            result["manifest"] = approve(header, trailer)
        to_write.put(_END)

    def write():
        while (item := pipe.get(to_write)) is not _END:
            _write_all(_fd_writer(out_fd), memoryview(item[0])[:item[1]])
            free_chunks.put(item[0])

    for stage in (decrypt, hash_, write):
        pipe.start(stage)
    pipe.run(receive)
    return _Unsealed(result["size"], digest.hexdigest(), opener.confirmation(result["size"], digest.digest()),
                     result["trailer"], result["manifest"])


# --- files ---------------------------------------------------------------------------------------

class AtomicFile:
    """A temporary file beside `dest`, renamed over it by commit() or removed on any failure.

    The temporary name carries the writer's PID, so a later writer can remove what a killed one
    left behind (remove_stale()).
    """

    def __init__(self, dest, option="dest"):
        self.dest = dest
        directory = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(directory):
            raise TransportError("%s: the directory %s does not exist; create it first" % (option, directory),
                                 reason="dest_dir", option=option)
        self.remove_stale(dest)
        prefix = "%s%d-" % (_part_prefix(dest), os.getpid())
        try:
            self.fd, self.path = _mkstemp(directory, prefix)
        except OSError as exc:
            raise TransportError("%s: cannot create a file in %s: %s" % (option, directory, exc.strerror),
                                 reason="dest_dir", option=option) from None

    def commit(self, fsync=True):
        if fsync:
            os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        os.replace(self.path, self.dest)
        if fsync:
            _fsync_dir(os.path.dirname(os.path.abspath(self.dest)))

    def discard(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or self.fd is not None:
            self.discard()

    @staticmethod
    def remove_stale(dest):
        """Remove temporary files of `dest` whose writer process is gone."""
        directory, prefix = os.path.dirname(os.path.abspath(dest)), _part_prefix(dest)
        for name in os.listdir(directory):
            if not (name.startswith(prefix) and name.endswith(".part")):
                continue
            pid = name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass


def _part_prefix(dest):
    return ".%s.qstream-" % os.path.basename(dest)


def _mkstemp(directory, prefix):
    import tempfile  # pylint: disable=import-outside-toplevel
    return tempfile.mkstemp(prefix=prefix, suffix=".part", dir=directory)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_source(src, option="src"):
    """Open the plaintext image for reading; a clear error names the option."""
    if not os.path.exists(src):
        raise TransportError("%s: %s does not exist" % (option, src), reason="src", option=option)
    if os.path.isdir(src):
        raise TransportError("%s: %s is a directory, not a file" % (option, src), reason="src", option=option)
    try:
        fin = open(src, "rb", buffering=0)  # pylint: disable=consider-using-with
    except OSError as exc:
        raise TransportError("%s: cannot read %s: %s" % (option, src, exc.strerror), reason="src",
                             option=option) from None
    try:
        os.posix_fadvise(fin.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)  # larger read-ahead from disk
    except (AttributeError, OSError):
        pass  # not on this platform, or not a regular file (a pipe)
    return fin


def file_sha256(path):
    """SHA-256 hex of a file, or None when it does not exist."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as fin:
            buf = bytearray(READ_BLOCK)
            view = memoryview(buf)
            while count := fin.readinto(buf):
                digest.update(view[:count])
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def send_file(src, dest, sealer, fsync=True, sha256=None):
    """Write the qstream of `src` to the file `dest` (atomically); sha256: see seal()."""
    start = time.monotonic()
    with open_source(src) as fin, AtomicFile(dest) as out:
        size, sha256, wire = seal(fin, sealer, _fd_writer(out.fd), sha256)
        out.commit(fsync)
    return _sent(sealer, size, sha256, wire, start)


def receive(fin, dest, key_for, expected_sha256=None, fsync=True, policy=None):
    """Read a qstream from fin and install its verified plaintext as `dest`.

    key_for(header) -> the QKD keys (bytes, in header.key_ids order); it is called only when the
    image must be installed and the stream names key_IDs: when `dest` already holds expected_sha256
    (or the SHA-256 the header announces) nothing is consumed and Received.changed is False.
    policy (pqc.ReceiverPolicy): admits the header before any key is taken, decapsulates the
    ML-KEM secret, approves the signed manifest before the rename. A manifest is installed beside
    the image (<dest>.manifest.json and .sig), before the image.
    """
    start = time.monotonic()
    header = qstream.read_header(fin)
    announced = header.plaintext_sha256.hex() if header.plaintext_sha256 else None
    want = expected_sha256 or announced
    if want and file_sha256(dest) == want:
        return Received(dest=dest, key_ids=list(header.key_ids), size=os.path.getsize(dest), sha256=want,
                        seconds=time.monotonic() - start, key_bits=0, mode=header.mode_name, changed=False,
                        protected_by=header.protected_by, master_sae_id=header.master_sae_id)
    if policy is not None:
        policy.admit(header)
    with AtomicFile(dest) as out:
        _check_space(dest, header.plaintext_size)
        kem_secret = policy.kem_secret(header) if policy is not None else None  # local: before a key is spent
        keys = key_for(header) if header.key_ids else []
        unsealed = unseal(fin, header, keys, out.fd, kem_secret, policy.approve if policy is not None else None)
        if expected_sha256 and unsealed.sha256 != expected_sha256:
            raise TransportError("sha256: the image received has SHA-256 %s, not the expected %s; "
                                 "nothing was installed" % (unsealed.sha256, expected_sha256),
                                 reason="checksum_mismatch", option="sha256")
        manifest_path = None
        if unsealed.trailer is not None and unsealed.trailer.manifest:
            manifest_path = pqc.write_manifest(dest, unsealed.trailer)
        out.commit(fsync)
    key_bits = sum(len(key) for key in keys) * 8
    return Received(dest=dest, key_ids=list(header.key_ids), size=unsealed.size, sha256=unsealed.sha256,
                    seconds=time.monotonic() - start, key_bits=key_bits, mode=header.mode_name,
                    confirmation=unsealed.confirmation, protected_by=header.protected_by,
                    master_sae_id=header.master_sae_id, manifest=unsealed.manifest, manifest_path=manifest_path,
                    signature_verified=bool(policy is not None and policy.signature_verified))


def receive_file(src, dest, key_for, expected_sha256=None, fsync=True, policy=None):
    """Install the verified plaintext of the qstream file `src` as `dest`."""
    with open_source(src) as fin:
        return receive(fin, dest, key_for, expected_sha256, fsync, policy)


def _check_space(dest, size):
    if size is None:
        return
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(dest))).free
    if free < size:
        raise TransportError("dest: %s needs %d bytes, its file system has %d free; nothing was received"
                             % (dest, size, free), reason="no_space", option="dest")


def _sent(sealer, size, sha256, wire, start, changed=True):
    key_ids = list(sealer.header.key_ids)
    signer = getattr(sealer, "signer", None)
    return Sent(key_ids=key_ids, size=size, sha256=sha256, wire_bytes=wire, seconds=time.monotonic() - start,
                key_bits=sealer.key_bits, mode=qstream.MODE_NAMES[sealer.mode], changed=changed,
                protected_by=qstream.PROTECTED_BY[sealer.mode], manifest=signer.document if signer else None)


# --- TCP ---------------------------------------------------------------------------------------

def listen(bind, port, option="port"):
    """A listening socket; a port in use or a bad address fails naming the option."""
    try:
        infos = socket.getaddrinfo(bind or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise TransportError("bind: cannot resolve %r: %s" % (bind, exc), reason="bind", option="bind") from None
    family, kind, proto, address = infos[0][0], infos[0][1], infos[0][2], infos[0][4]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise TransportError("%s: %s:%s is already in use; pick a free port or stop what listens there"
                                 % (option, bind, port), reason="port_in_use", option=option) from None
        raise TransportError("%s: cannot listen on %s:%s: %s" % (option, bind, port, exc.strerror),
                             reason="bind", option=option) from None
    return sock


def receive_tcp(listener, dest, key_for, timeout=300.0, expected_sha256=None, fsync=True, policy=None):
    """Accept one sender on `listener`, install its image as `dest`, acknowledge, close."""
    listener.settimeout(timeout)
    try:
        conn = listener.accept()[0]
    except socket.timeout:
        raise TransportError("timeout: no sender connected within %s seconds; nothing was received" % timeout,
                             reason="timeout", option="timeout") from None
    finally:
        listener.close()
    with conn:
        conn.settimeout(timeout)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fin = conn.makefile("rb", buffering=0)
        try:
            received = receive(fin, dest, key_for, expected_sha256, fsync, policy)
        except socket.timeout:
            _refuse(conn, "timeout", "the sender went silent for %s seconds" % timeout)
            raise TransportError("timeout: the sender went silent for %s seconds; nothing was installed"
                                 % timeout, reason="timeout", option="timeout") from None
        except QkdNfvError as exc:
            _refuse(conn, exc.details.get("reason", "refused"), exc.msg)
            raise
        except OSError as exc:
            raise TransportError("the connection from the sender broke: %s; nothing was installed" % exc,
                                 reason="connection") from None
        status = ACK_INSTALLED if received.changed else ACK_PRESENT
        body = struct.pack("!Q", received.size) + bytes.fromhex(received.sha256) + received.confirmation
        _send_ack(conn, status, body, early=not received.changed)
        return received


def _send_ack(conn, status, body, early=False):
    """Answer the sender. An early answer (before the stream's end) is followed by reading on
    briefly, so that it is not lost to the reset that unread data would cause."""
    try:
        conn.sendall(_ACK.pack(_ACK_MAGIC, status, len(body)) + body)
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        return  # the sender is gone; the receiver's own result is what counts
    if early:
        _drain(conn)


def _refuse(conn, reason, message):
    """Tell the sender why the stream was refused."""
    _send_ack(conn, ACK_REFUSED, ("%s: %s" % (reason, message)).encode()[:4000], early=True)


def _drain(conn):
    deadline = time.monotonic() + _ACK_REFUSED_WAIT
    scratch = bytearray(READ_BLOCK)
    try:
        conn.settimeout(_ACK_REFUSED_WAIT)
        while time.monotonic() < deadline and conn.recv_into(scratch):
            pass
    except OSError:
        pass


def connect(host, port, timeout, option="tcp"):
    """Connect, retrying while the receiver is not listening yet (it may start a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=max(1.0, deadline - time.monotonic()))
        except (ConnectionRefusedError, socket.timeout) as exc:
            if time.monotonic() >= deadline:
                raise TransportError("%s: nothing accepted a connection on %s:%s within %s seconds (%s); is "
                                     "the receiver listening?" % (option, host, port, timeout, exc),
                                     reason="connection", option=option) from None
            time.sleep(0.2)
            continue
        except OSError as exc:
            raise TransportError("%s: cannot connect to %s:%s: %s" % (option, host, port, exc),
                                 reason="connection", option=option) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        return sock


class _AckArrived(Exception):
    pass


def send_tcp(src, host, port, sealer, timeout=300.0, sha256=None):
    """Send the qstream of `src` to a receive_tcp() listener; return once it confirmed the install.

    sha256: see seal().
    """
    start = time.monotonic()
    with open_source(src) as fin:
        sock = connect(host, port, timeout)
        with sock:
            def write(view):
                # A receiver that refuses answers early: look before each write (no wait).
                if select.select([sock], [], [], 0)[0]:
                    raise _AckArrived()
                sock.sendall(view)

            try:
                size, sha256, wire = seal(fin, sealer, write, sha256)
                sock.shutdown(socket.SHUT_WR)
            except (_AckArrived, OSError) as exc:
                status, body = _read_ack(sock, timeout, "%s:%s" % (host, port), lost=exc)
                if status == ACK_PRESENT:
                    return Sent(key_ids=list(sealer.header.key_ids), size=0, sha256=body[8:40].hex(),
                                wire_bytes=0, seconds=time.monotonic() - start, key_bits=sealer.key_bits,
                                mode=qstream.MODE_NAMES[sealer.mode], changed=False,
                                protected_by=qstream.PROTECTED_BY[sealer.mode])
                raise TransportError("the receiver at %s:%s answered before the end of the stream"
                                     % (host, port), reason="protocol") from None
            status, body = _read_ack(sock, timeout, "%s:%s" % (host, port))
    _check_installed(status, body, sealer, size, sha256, host, port)
    return _sent(sealer, size, sha256, wire, start, changed=status == ACK_INSTALLED)


def _read_ack(sock, timeout, peer, lost=None):
    """-> (status, body); a refusal raises ReceiverRefusedError with the receiver's reason."""
    sock.settimeout(timeout)
    try:
        fin = sock.makefile("rb", buffering=0)
        head = qstream.read_exact(fin, _ACK.size)
        magic, status, length = _ACK.unpack(head) if len(head) == _ACK.size else (None, None, 0)
        body = qstream.read_exact(fin, length)
    except OSError as exc:
        head, magic, body = b"", None, b""
        lost = lost or exc
    if magic != _ACK_MAGIC or len(body) != length:
        why = (" (%s)" % lost) if lost and not isinstance(lost, _AckArrived) else ""
        raise TransportError("the connection to the receiver at %s was lost before it confirmed the "
                             "image%s; the receiver installs nothing it has not verified"
                             % (peer, why), reason="connection")
    if status == ACK_REFUSED:
        text = body.decode(errors="replace")
        reason = text.split(":", 1)[0] if ":" in text else "refused"
        raise ReceiverRefusedError("the receiver at %s refused the image: %s" % (peer, text), reason=reason)
    return status, body


def _check_installed(status, body, sealer, size, sha256, host, port):
    if status not in (ACK_INSTALLED, ACK_PRESENT) or len(body) < 40:
        raise TransportError("the receiver at %s:%s sent an acknowledgement this qkd.nfv does not "
                             "understand" % (host, port), reason="protocol")
    their_size, their_sha = struct.unpack("!Q", body[:8])[0], body[8:40].hex()
    if status == ACK_PRESENT:
        return
    if (their_size, their_sha) != (size, sha256):
        raise TransportError("the receiver at %s:%s reports %d bytes with SHA-256 %s; %d bytes with %s "
                             "were sent" % (host, port, their_size, their_sha, size, sha256), reason="protocol")
    if sealer.mode != qstream.MODE_OTP and not hmac.compare_digest(
            body[40:], sealer.confirmation(size, bytes.fromhex(sha256))):
        raise TransportError("the acknowledgement from %s:%s does not prove the key: it did not come from "
                             "the intended receiver" % (host, port), reason="confirmation")


# --- SFTP --------------------------------------------------------------------------------------

@dataclass
class SftpTarget:  # pylint: disable=too-many-instance-attributes
    """Where and how to upload; host_key_checking is strict (known hosts only) or accept_new.

    engine: openssh (the ssh client, SSH in C), paramiko (pure Python), or auto: openssh when the
    ssh client is installed and no key passphrase must be given, else paramiko.
    """

    host: str
    path: str
    user: str | None = None
    port: int = 22
    private_key: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = None
    host_key_checking: str = "strict"
    timeout: float = 30.0
    request_size: int | None = None
    engine: str = "auto"


def sftp_engine(target):
    """-> 'openssh' or 'paramiko' for target; a choice that cannot work fails naming sftp.engine."""
    if target.engine == "auto":
        return "openssh" if sftp.available() and not target.passphrase else "paramiko"
    if target.engine == "openssh" and not sftp.available():
        raise TransportError("sftp.engine: openssh needs the ssh client on the sending host (Debian: "
                             "apt-get install openssh-client), or use engine paramiko", reason="missing_library",
                             option="sftp.engine")
    if target.engine == "openssh" and target.passphrase:
        raise TransportError("sftp.engine: ssh cannot be given sftp.private_key_passphrase (it runs in batch "
                             "mode); use engine paramiko, or a key without a passphrase", option="sftp.engine")
    return target.engine


def _paramiko():
    try:
        import paramiko  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise TransportError("the Python library paramiko is required for sftp with engine paramiko; install "
                             "it on the sending host, or install the ssh client (engine openssh)",
                             reason="missing_library") from None
    return paramiko


def _gcm_first_transport(paramiko):
    """A paramiko Transport that prefers aes256-gcm (+35-70 % upload speed over its default order)."""
    def factory(sock, **kwargs):
        transport = paramiko.Transport(sock, **kwargs)
        options = transport.get_security_options()
        preferred = [c for c in ("aes256-gcm@openssh.com", "aes128-gcm@openssh.com") if c in options.ciphers]
        options.ciphers = tuple(preferred + [c for c in options.ciphers if c not in preferred])
        return transport
    return factory


def _known_hosts(target):
    """Checks shared by both engines, before connecting; -> the known_hosts path."""
    if target.private_key and not os.access(target.private_key, os.R_OK):
        raise TransportError("sftp.private_key: cannot read %s" % target.private_key, reason="authentication",
                             option="sftp.private_key")
    known_hosts = os.path.expanduser(target.known_hosts or "~/.ssh/known_hosts")
    if not os.path.exists(known_hosts):
        if target.host_key_checking == "strict":
            raise TransportError("sftp.known_hosts: %s does not exist; add the server's verified host key to it "
                                 "(strict host key checking)" % known_hosts, reason="host_key_unknown",
                                 option="sftp.known_hosts")
        try:  # accept_new starts a known_hosts file, as OpenSSH does
            os.close(os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise TransportError("sftp.known_hosts: cannot create %s: %s" % (known_hosts, exc.strerror),
                                 reason="host_key", option="sftp.known_hosts") from None
    return known_hosts


def sftp_connect(target):
    """-> a connected, authenticated paramiko SSHClient; the host key must be known (or new, if allowed)."""
    paramiko = _paramiko()
    known_hosts = _known_hosts(target)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(known_hosts)  # accept_new also saves new keys here
    except (OSError, paramiko.SSHException) as exc:
        raise TransportError("sftp.known_hosts: cannot use %s: %s" % (known_hosts, exc), reason="host_key",
                             option="sftp.known_hosts") from None
    client.set_missing_host_key_policy(
        paramiko.RejectPolicy() if target.host_key_checking == "strict" else paramiko.AutoAddPolicy())
    sock = connect(target.host, target.port, target.timeout, option="sftp.host")
    try:
        client.connect(target.host, port=target.port, username=target.user, key_filename=target.private_key,
                       passphrase=target.passphrase, sock=sock, timeout=target.timeout,
                       banner_timeout=target.timeout, auth_timeout=target.timeout, allow_agent=False,
                       look_for_keys=target.private_key is None, transport_factory=_gcm_first_transport(paramiko))
    except Exception as exc:  # pylint: disable=broad-except  # mapped, or re-raised, below
        client.close()  # stops paramiko's transport thread before the socket goes
        sock.close()
        raise _ssh_error(paramiko, exc, target, known_hosts) from None
    return client


def _ssh_error(paramiko, exc, target, known_hosts):
    """paramiko's connection errors -> a TransportError naming the option to fix."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return _host_key_error(target, known_hosts, changed=True)
    if isinstance(exc, paramiko.AuthenticationException):
        return _authentication_error(target, exc)
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return _host_key_error(target, known_hosts, changed=False)
    if isinstance(exc, (paramiko.SSHException, OSError)):
        return TransportError("sftp: SSH with %s:%s failed: %s" % (target.host, target.port, exc),
                              reason="connection", option="sftp.host")
    return exc


def _openssh_error(exc, target, known_hosts):
    """What ssh said when it gave up -> a TransportError naming the option to fix."""
    said = exc.details.get("ssh_said", "")
    if "IDENTIFICATION HAS CHANGED" in said or "has changed" in said:
        return _host_key_error(target, known_hosts, changed=True)
    if "Host key verification failed" in said or "host key is known for" in said:
        return _host_key_error(target, known_hosts, changed=False)
    if "Permission denied" in said:
        return _authentication_error(target, said)
    if exc.details.get("reason") == "missing_library":
        return TransportError("sftp.engine: %s" % exc.msg, reason="missing_library", option="sftp.engine")
    return TransportError("sftp: SSH with %s:%s failed: %s" % (target.host, target.port, exc.msg),
                          reason="connection", option="sftp.host")


def _host_key_error(target, known_hosts, changed):
    where = "%s:%s" % (target.host, target.port)
    if changed:
        return TransportError("sftp: the host key of %s does not match the one in %s: refusing to connect "
                              "(someone may be intercepting the connection, or the server's key changed)"
                              % (where, known_hosts), reason="host_key_mismatch", option="sftp.known_hosts")
    return TransportError("sftp: the host key of %s is not in %s: refusing to connect; add the server's "
                          "verified key there first" % (where, known_hosts), reason="host_key_unknown",
                          option="sftp.known_hosts")


def _authentication_error(target, why):
    return TransportError("sftp: authentication as %s at %s:%s failed (%s); check sftp.user and sftp.private_key"
                          % (target.user, target.host, target.port, why), reason="authentication",
                          option="sftp.private_key")


class _ParamikoFiles:
    """The remote file operations of an upload, through paramiko."""

    def __init__(self, target):
        self.client = sftp_connect(target)
        self.sftp = self.client.open_sftp()
        self.request_size = target.request_size or (
            OPENSSH_SFTP_REQUEST if "OpenSSH" in self.client.get_transport().remote_version else None)
        self.errors = (OSError, EOFError, _paramiko().SSHException)

    def exists(self, path):
        try:
            self.sftp.stat(path)
            return True
        except FileNotFoundError:
            return False

    def upload(self, path, produce):
        """Create path (0600) and write into it what produce(write) writes; -> what produce returns."""
        with self.sftp.open(path, "wb", bufsize=0) as remote:
            remote.chmod(0o600)
            remote.set_pipelined(True)
            if self.request_size:
                remote.MAX_REQUEST_SIZE = self.request_size
            return produce(remote.write)

    def rename(self, old, new):
        self.sftp.posix_rename(old, new)

    def remove(self, path):
        self.sftp.remove(path)

    def close(self):
        self.client.close()


class _OpensshFiles:
    """The remote file operations of an upload, through the ssh client (sftp.Session)."""

    errors = (sftp.SftpError, OSError)

    def __init__(self, target):
        known_hosts = _known_hosts(target)
        try:
            self.session = sftp.Session(sftp.ssh_command(target, known_hosts), max(target.timeout, 30.0))
        except sftp.SftpError as exc:
            raise _openssh_error(exc, target, known_hosts) from None

    def exists(self, path):
        return self.session.stat(path)

    def upload(self, path, produce):
        handle = self.session.create(path, 0o600)
        try:
            writer = self.session.writer(handle)
            produced = produce(writer.write)
            writer.flush()
        finally:
            _quietly(self.session.close_handle, handle)
        return produced

    def rename(self, old, new):
        self.session.rename(old, new)

    def remove(self, path):
        self.session.remove(path)

    def close(self):
        self.session.close()


def _remote_files(target):
    return _OpensshFiles(target) if sftp_engine(target) == "openssh" else _ParamikoFiles(target)


def sftp_check(target):
    """Connect, authenticate and look at the remote directory; upload nothing."""
    files = _remote_files(target)
    try:
        directory = posixpath.dirname(target.path) or "."
        if not files.exists(directory):
            raise TransportError("sftp.path: the remote directory %s does not exist" % directory,
                                 reason="dest_dir", option="sftp.path")
    finally:
        files.close()


def send_sftp(src, sealer, target, sha256=None):
    """Upload the qstream of `src` to target.path, encrypting while uploading (no local copy).

    The upload goes to a temporary name beside target.path, renamed once every write is acknowledged;
    the receiving host then runs image_receive on that file. sha256: see seal().
    """
    start = time.monotonic()
    with open_source(src) as fin:
        files = _remote_files(target)
        try:
            directory, name = posixpath.split(target.path)
            temp = posixpath.join(directory, ".%s.qstream-%s.part" % (name, secrets.token_hex(4)))
            try:
                size, digest, wire = files.upload(temp, lambda write: seal(fin, sealer, write, sha256))
                files.rename(temp, target.path)
            except files.errors as exc:
                removed = _quietly(lambda: files.remove(temp) or True)
                if _quietly(files.exists, directory) is False:
                    raise TransportError("sftp.path: cannot create %s on %s: the remote directory does not exist"
                                         % (temp, target.host), reason="dest_dir", option="sftp.path") from None
                raise TransportError("sftp: the upload to %s:%s failed: %s; %s" % (
                    target.host, target.port, getattr(exc, "msg", exc),
                    "the partial upload was removed" if removed else
                    "a partial upload may remain as %s (image_receive never reads it; delete it)" % temp),
                    reason="connection") from None
            except BaseException:
                _quietly(files.remove, temp)
                raise
        finally:
            files.close()
    return _sent(sealer, size, digest, wire, start)


def _quietly(call, *args):
    """call(*args) -> its result, or None when it fails (best effort, after a failure)."""
    try:
        return call(*args)
    except Exception:  # pylint: disable=broad-except  # best-effort cleanup after a failure
        return None
