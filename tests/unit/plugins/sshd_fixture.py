# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real OpenSSH sshd on 127.0.0.1 for SFTP tests and benchmarks.

Sshd(directory) writes its own host key, a client key, authorized_keys, known_hosts and an
sshd_config into `directory`, starts `/usr/sbin/sshd -D` on a free port and stops it by PID.
Public key login only, for the user running the tests; SFTP by internal-sftp.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SSHD = "/usr/sbin/sshd"


def available():
    return os.access(SSHD, os.X_OK)


def write_keypair(path):
    """An ed25519 key pair in OpenSSH format: path (private, 0600) and path.pub; -> public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    with open(path + ".pub", "w", encoding="ascii") as out:
        out.write(public + "\n")
    return public


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    """sshd on 127.0.0.1:port; .user, .client_key, .known_hosts and .host_key_line for clients."""

    def __init__(self, directory, port=None, launcher=()):
        self.launcher = list(launcher)  # e.g. /usr/bin/time -o FILE -f %M, to measure sshd
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.host_key = os.path.join(self.directory, "host_ed25519")
        self.client_key = os.path.join(self.directory, "client_ed25519")
        self.known_hosts = os.path.join(self.directory, "known_hosts")
        self.config = os.path.join(self.directory, "sshd_config")
        self.log = os.path.join(self.directory, "sshd.log")
        self.pid_file = os.path.join(self.directory, "sshd.pid")
        host_public = write_keypair(self.host_key)
        client_public = write_keypair(self.client_key)
        authorized = os.path.join(self.directory, "authorized_keys")
        with open(authorized, "w", encoding="ascii") as out:
            out.write(client_public + "\n")
        os.chmod(authorized, 0o600)
        self.host_key_line = "[127.0.0.1]:%d %s" % (self.port, host_public)
        with open(self.known_hosts, "w", encoding="ascii") as out:
            out.write(self.host_key_line + "\n")
        with open(self.config, "w", encoding="ascii") as out:
            out.write("\n".join([
                "Port %d" % self.port,
                "ListenAddress 127.0.0.1",
                "HostKey %s" % self.host_key,
                "PidFile %s" % self.pid_file,
                "AuthorizedKeysFile %s" % authorized,
                "StrictModes no",  # the key files may sit below a world-writable temp directory
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                "",
            ]))
        self.process = None

    def start(self, timeout=10.0):
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                self.launcher + [SSHD, "-D", "-e", "-f", self.config], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("sshd exited at start:\n%s" % self.read_log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not listen on port %d within %s s:\n%s" % (self.port, timeout, self.read_log()))

    def stop(self):
        """Stop sshd by its PID (from its PidFile when a launcher runs it) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        pid = self.process.pid
        if self.launcher:
            try:
                with open(self.pid_file, encoding="ascii") as pid_file:
                    pid = int(pid_file.read().strip())
            except (OSError, ValueError):
                pass
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def read_log(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as log:
                return log.read()[-4000:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
