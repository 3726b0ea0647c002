# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key-usage audit trail: one JSON line per use of a key, appended at each end (docs/audit.md).

    AuditLog.open(path, option)  -> a log opened for appending (0600), before any key is taken
    AuditLog.append(record)      one write() of one line: safe with concurrent writers (O_APPEND)
    default_path()               $QKD_NFV_AUDIT_LOG, else ~/.qkd-nfv/audit.jsonl
    read(path, **filters)        -> (records, malformed line count)

A record holds key_IDs, names, digests and outcomes; values must be text, numbers, booleans, None,
lists or dicts of those: bytes are refused, so no key can be written by mistake.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import stat
import time

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

FORMAT_VERSION = 1
ENV = "QKD_NFV_AUDIT_LOG"
DEFAULT_PATH = "~/.qkd-nfv/audit.jsonl"
MAX_LINE = 8192        # one line stays one small write; long messages are shortened
MAX_MSG = 1000
RESULTS = ("ok", "failed", "refused")


class AuditError(QkdNfvError):
    """The audit trail cannot be written or read; the message names the option."""

    def __init__(self, msg, option="audit_log", **details):
        super().__init__(msg, option=option, reason="audit_log", **details)


def default_path():
    return os.path.expanduser(os.environ.get(ENV) or DEFAULT_PATH)


def resolve(path=None):
    """The absolute path of the trail: `path`, else the default."""
    return os.path.abspath(os.path.expanduser(path or default_path()))


def utc_now():
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)


def _who():
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"host": socket.gethostname(), "user": user, "pid": os.getpid()}


def _plain(value, where="record"):
    """Refuse anything that is not plain data: bytes (a key, by mistake) above all."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("audit %s: keys must be text" % where)
            _plain(item, "%s.%s" % (where, key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _plain(item, where)
    elif not (value is None or isinstance(value, (str, int, float, bool))):
        raise TypeError("audit %s: %s values are not written to the audit trail" % (where, type(value).__name__))


class AuditLog:
    """An append-only JSON-lines file, opened once before a key is taken and kept until done."""

    def __init__(self, fd, path, fsync=True):
        self.fd, self.path, self.fsync = fd, path, fsync

    @classmethod
    def open(cls, path=None, option="audit_log", fsync=True):
        """Open (create 0600, in a 0700 directory if new) for appending; a failure names the option."""
        path = resolve(path)
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0),
                         0o600)
        except OSError as exc:
            raise AuditError("%s: cannot open the audit trail %s for appending: %s; fix the path or its "
                             "permissions (or set audit: false)" % (option, path, exc.strerror or exc)) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise AuditError("%s: %s is not a regular file" % (option, path))
        if info.st_mode & 0o077:
            try:
                os.fchmod(fd, 0o600)  # a trail readable by others tells them which keys went where
            except OSError:
                os.close(fd)
                raise AuditError("%s: %s is readable by other users (mode %04o) and cannot be made 0600"
                                 % (option, path, stat.S_IMODE(info.st_mode))) from None
        return cls(fd, path, fsync)

    def append(self, record):
        """Write one record as one line, in a single write(); -> the record as written."""
        if self.fd is None:
            raise ValueError("this audit log is closed")
        record = dict(record)
        if "msg" in record and isinstance(record["msg"], str) and len(record["msg"]) > MAX_MSG:
            record["msg"] = record["msg"][:MAX_MSG] + "..."
        entry = {"v": FORMAT_VERSION, "time": utc_now()}
        entry.update(_who())
        entry.update(record)
        _plain(entry)
        line = (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode()
        if len(line) > MAX_LINE:
            raise ValueError("an audit record must fit in %d bytes" % MAX_LINE)
        written = os.write(self.fd, line)
        if written != len(line):  # a regular file takes a short line whole unless the disk is full
            raise AuditError("audit_log: the disk holding %s is full; the audit line is incomplete" % self.path)
        if self.fsync:
            os.fsync(self.fd)
        return entry

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class NoAuditLog:
    """What a module uses when the audit trail is switched off."""

    path = None

    def append(self, record):
        return record

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass


def open_for(params, option="audit_log"):
    """The audit trail a module's `audit` and `audit_log` options ask for."""
    if not params.get("audit", True):
        return NoAuditLog()
    return AuditLog.open(params.get("audit_log"), option)


def matches(record, key_id=None, actor=None, result=None, sha256=None, key_mode=None, since=None, until=None):
    """True when the record passes every filter given (key_IDs compare case-insensitively)."""
    if key_id and key_id.lower() not in [str(k).lower() for k in record.get("key_ids") or []]:
        return False
    if actor and record.get("actor") != actor:
        return False
    if result and record.get("result") != result:
        return False
    if sha256 and ((record.get("image") or {}).get("sha256") or "").lower() != sha256.lower():
        return False
    if key_mode and record.get("key_mode") != key_mode:
        return False
    when = str(record.get("time") or "")
    return not (since and when < since or until and when >= until)


def read(path=None, **filters):
    """-> (records passing the filters (see matches()), oldest first; count of malformed lines).

    A line that is not a JSON object (for example one cut by a full disk) is counted, not returned.
    """
    path = resolve(path)
    records, malformed = [], 0
    try:
        handle = open(path, "rb")  # pylint: disable=consider-using-with
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        raise AuditError("path: cannot read the audit trail %s: %s" % (path, exc.strerror or exc),
                         option="path") from None
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                malformed += 1
                continue
            if not isinstance(record, dict):
                malformed += 1
            elif matches(record, **filters):
                records.append(record)
    return records, malformed
