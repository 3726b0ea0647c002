# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SFTP version 3 over OpenSSH's `ssh` client: the fast engine of transport.send_sftp.

OpenSSH runs the SSH transport in C (aes256-gcm@openssh.com with AES-NI): about twice the upload
speed of paramiko's Python packet layer. This module speaks the few requests an upload needs
(draft-ietf-secsh-filexfer-02: INIT, OPEN, WRITE, CLOSE, STAT, REMOVE, and OpenSSH's
posix-rename@openssh.com) over the pipes of `ssh -s HOST sftp`, with up to 64 writes of 255 KiB
in flight, as OpenSSH's own sftp client does. Host keys are checked strictly by ssh itself
against the given known_hosts file; no user or system ssh configuration is read.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import shutil
import struct
import subprocess
import tempfile
import time

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

SSH = "ssh"
MAX_WRITE = 261120  # 255 KiB: the largest write OpenSSH's sftp-server accepts (its messages are <= 256 KiB)
MAX_IN_FLIGHT = 64
MAX_REPLY = 256 * 1024

FXP_INIT, FXP_VERSION, FXP_OPEN, FXP_CLOSE, FXP_WRITE = 1, 2, 3, 4, 6
FXP_REMOVE, FXP_STAT, FXP_RENAME, FXP_EXTENDED = 13, 17, 18, 200
FXP_STATUS, FXP_HANDLE, FXP_ATTRS = 101, 102, 105
FXF_WRITE, FXF_CREAT, FXF_TRUNC, FXF_EXCL = 0x02, 0x08, 0x10, 0x20
ATTR_PERMISSIONS = 0x04
FX_OK, FX_NO_SUCH_FILE = 0, 2
STATUS_NAMES = {1: "end of file", 2: "no such file", 3: "permission denied", 4: "failure", 5: "bad message",
                8: "operation unsupported"}
POSIX_RENAME = b"posix-rename@openssh.com"


class SftpError(QkdNfvError):
    """An SFTP request the server refused; `code` is its SSH_FX status."""

    def __init__(self, msg, code=None, **details):
        super().__init__(msg, **details)
        self.code = code


def available():
    return shutil.which(SSH) is not None


def ssh_command(target, known_hosts):
    """The ssh argv for target (a transport.SftpTarget): batch mode, strict host keys, GCM first."""
    checking = "yes" if target.host_key_checking == "strict" else "accept-new"
    timeout = max(1, int(round(target.timeout)))
    argv = [SSH, "-F", "/dev/null", "-x", "-a",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=%s" % checking,
            "-o", "UserKnownHostsFile=%s" % _quoted(known_hosts, "sftp.known_hosts"),
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no", "-o", "IdentityAgent=none",
            "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
            "-o", "ConnectTimeout=%d" % timeout, "-o", "ServerAliveInterval=%d" % timeout,
            "-o", "ServerAliveCountMax=3", "-o", "Ciphers=^aes256-gcm@openssh.com,aes128-gcm@openssh.com",
            "-o", "LogLevel=ERROR", "-p", str(target.port)]
    if target.private_key:
        argv += ["-o", "IdentitiesOnly=yes", "-i", target.private_key]
    if target.user:
        argv += ["-l", target.user]
    return argv + ["-s", "--", target.host, "sftp"]


def _quoted(path, option):
    """A file name as one ssh -o value (ssh splits unquoted values at blanks)."""
    if '"' in path:
        raise SftpError("%s: the openssh engine cannot use a file name with a double quote: %s" % (option, path),
                        reason="invalid", option=option)
    return '"%s"' % path


def _string(data):
    return struct.pack(">I", len(data)) + data


class _Reader:
    """Parses one reply body: uint32, uint64 and string fields in order."""

    def __init__(self, body):
        self.body, self.pos = body, 0

    def uint32(self):
        self.pos += 4
        return struct.unpack_from(">I", self.body, self.pos - 4)[0]

    def string(self):
        size = self.uint32()
        self.pos += size
        return bytes(self.body[self.pos - size:self.pos])


class Session:
    """One `ssh -s HOST sftp` process and the SFTP conversation over its pipes."""

    def __init__(self, argv, timeout):
        self.timeout = timeout
        self._errors = tempfile.TemporaryFile()  # pylint: disable=consider-using-with  # closed in close()
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # pylint: disable=consider-using-with
                                            stderr=self._errors, bufsize=0, close_fds=True)
        except OSError as exc:
            self._errors.close()
            raise SftpError("cannot run %s: %s" % (argv[0], exc.strerror), reason="missing_library") from None
        self._out, self._in = self.process.stdin.fileno(), self.process.stdout.fileno()
        for fd in (self._out, self._in):  # 1 MiB pipes: fewer wake-ups per MiB (Linux; best effort)
            try:
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
            except OSError:
                pass
        self._next_id = 0
        self.extensions = {}
        try:
            self._send(FXP_INIT, struct.pack(">I", 3))
            kind, body = self._packet()
            if kind != FXP_VERSION:
                raise self.failure("the server did not start SFTP")
            reader = _Reader(body)
            reader.uint32()
            while reader.pos < len(body):
                name = reader.string()
                self.extensions[name] = reader.string()
        except BaseException:
            self.close()
            raise

    # --- requests ---

    def stat(self, path):
        """-> True if path exists, False if it does not."""
        try:
            self._call(FXP_STAT, _string(path.encode()), FXP_ATTRS)
            return True
        except SftpError as exc:
            if exc.code == FX_NO_SUCH_FILE:
                return False
            raise

    def create(self, path, mode=0o600):
        """Create a new file (never an existing one) for writing; -> its handle."""
        flags = FXF_WRITE | FXF_CREAT | FXF_TRUNC | FXF_EXCL
        body = _string(path.encode()) + struct.pack(">III", flags, ATTR_PERMISSIONS, mode)
        return _Reader(self._call(FXP_OPEN, body, FXP_HANDLE)).string()

    def close_handle(self, handle):
        self._call(FXP_CLOSE, _string(handle))

    def rename(self, old, new):
        """Rename over an existing file, atomically (posix-rename@openssh.com), else a plain rename."""
        if POSIX_RENAME in self.extensions:
            self._call(FXP_EXTENDED, _string(POSIX_RENAME) + _string(old.encode()) + _string(new.encode()))
        else:
            self._call(FXP_RENAME, _string(old.encode()) + _string(new.encode()))

    def remove(self, path):
        self._call(FXP_REMOVE, _string(path.encode()))

    def writer(self, handle):
        return _PipelinedWriter(self, handle)

    # --- wire ---

    def _call(self, kind, body, want=FXP_STATUS):
        request_id = self._send(kind, body)
        return self._reply(request_id, want)

    def _send(self, kind, body, data=b""):
        """Send one request (body, then data without copying it); -> its request id."""
        if kind == FXP_INIT:
            head, request_id = struct.pack(">IB", 1 + len(body), kind), None
        else:
            self._next_id = request_id = (self._next_id + 1) & 0xFFFFFFFF
            head = struct.pack(">IBI", 5 + len(body) + len(data), kind, request_id)
        parts = [memoryview(head + body)] + ([memoryview(data)] if len(data) else [])
        try:
            while parts:
                written = os.writev(self._out, parts)
                while parts and written >= len(parts[0]):
                    written -= len(parts[0])
                    parts.pop(0)
                if parts:
                    parts[0] = parts[0][written:]
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                raise self.failure("the SSH connection closed") from None
            raise
        return request_id

    def _reply(self, request_id, want):
        kind, body = self._packet()
        reader = _Reader(body)
        if reader.uint32() != request_id:
            raise self.failure("the server answered another request")
        if kind == FXP_STATUS:
            code = reader.uint32()
            if code == FX_OK and want == FXP_STATUS:
                return b""
            message = reader.string().decode(errors="replace") if reader.pos < len(body) else ""
            raise SftpError(message or STATUS_NAMES.get(code, "status %d" % code), code=code)
        if kind != want:
            raise self.failure("unexpected SFTP reply %d" % kind)
        return body[reader.pos:]

    def _packet(self):
        length = struct.unpack(">I", self._read(4))[0]
        if not 1 <= length <= MAX_REPLY:
            raise self.failure("an SFTP reply of %d bytes" % length)
        body = self._read(length)
        return body[0], body[1:]

    def _read(self, size):
        data, deadline = b"", time.monotonic() + self.timeout
        while len(data) < size:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([self._in], [], [], wait)[0]:
                raise self.failure("no answer within %.0f s" % self.timeout)
            chunk = os.read(self._in, size - len(data))
            if not chunk:
                raise self.failure("the SSH connection closed")
            data += chunk
        return data

    def failure(self, what):
        """An SftpError with ssh's own explanation, when it gave one (it exits on fatal errors)."""
        if "closed" in what:  # ssh is exiting: let it finish writing why
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        said = self.stderr()
        return SftpError("%s: %s" % (what, said) if said else what, ssh_said=said)

    def stderr(self):
        self._errors.seek(0)
        lines = self._errors.read(8192).decode(errors="replace").strip().splitlines()
        return " ".join(line.strip() for line in lines if line.strip())

    def close(self):
        """End the session: close ssh's input, wait for it to exit, kill it if it does not."""
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._errors.close()


class _PipelinedWriter:
    """write(view) for a handle: WRITE requests of up to MAX_WRITE bytes, up to MAX_IN_FLIGHT unanswered."""

    def __init__(self, session, handle):
        self.session, self.handle = session, handle
        self.offset = 0
        self.pending = []

    def write(self, view):
        for start in range(0, len(view), MAX_WRITE):
            data = view[start:start + MAX_WRITE]
            body = _string(self.handle) + struct.pack(">QI", self.offset, len(data))
            self.pending.append(self.session._send(FXP_WRITE, body, data))  # pylint: disable=protected-access
            self.offset += len(data)
            if len(self.pending) >= MAX_IN_FLIGHT:
                self.session._reply(self.pending.pop(0), FXP_STATUS)  # pylint: disable=protected-access
        return len(view)

    def flush(self):
        """Wait until the server has acknowledged every write."""
        while self.pending:
            self.session._reply(self.pending.pop(0), FXP_STATUS)  # pylint: disable=protected-access
