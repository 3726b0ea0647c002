# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""transport over SFTP against a real OpenSSH sshd on 127.0.0.1 (its own host key, key login).

Every behaviour is checked with both engines: openssh (the ssh client) and paramiko.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

import pytest

import sshd_fixture
from ansible_collections.qkd.nfv.plugins.module_utils import qstream, transport
from ansible_collections.qkd.nfv.plugins.module_utils.transport import SftpTarget, TransportError

KEY = bytes(range(32))
MiB = 1 << 20

pytestmark = pytest.mark.skipif(not sshd_fixture.available(),
                                reason="OpenSSH sshd is not installed (apt-get install openssh-server)")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with sshd_fixture.Sshd(str(tmp_path_factory.mktemp("sshd"))) as server:
        yield server


@pytest.fixture(params=["openssh", "paramiko"])
def engine(request):
    return request.param


def target(sshd, path, engine="auto", **options):
    settings = dict(host="127.0.0.1", port=sshd.port, user=sshd.user, private_key=sshd.client_key,
                    known_hosts=sshd.known_hosts, path=str(path), timeout=20, engine=engine)
    settings.update(options)
    return SftpTarget(**settings)


def sealer():
    return qstream.StreamSealer(KEY, "key-1", master_sae_id="sae-node1")


def make_file(path, size):
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(os.urandom(min(left, 4 * MiB)))
            left -= min(left, 4 * MiB)
    return str(path)


def parts(directory):
    return [name for name in os.listdir(str(directory)) if name.endswith(".part")]


@pytest.mark.parametrize("size", [0, 1, MiB - 1, MiB, MiB + 1, 100 * MiB])
def test_sftp_round_trip(sshd, tmp_path, size, engine):
    src = make_file(tmp_path / "image", size)
    remote = tmp_path / "dc"
    remote.mkdir()
    sent = transport.send_sftp(src, sealer(), target(sshd, remote / "image.qstream", engine))
    assert parts(remote) == [] and oct(os.stat(str(remote / "image.qstream")).st_mode & 0o777) == "0o600"
    # The data centre decrypts the uploaded qstream, as image_receive with a file source does.
    received = transport.receive_file(str(remote / "image.qstream"), str(remote / "image"), lambda h: [KEY])
    assert sent.size == received.size == size
    assert sent.sha256 == received.sha256 == transport.file_sha256(src) == transport.file_sha256(str(remote / "image"))


def test_sftp_prefers_aes256_gcm(sshd, tmp_path):
    client = transport.sftp_connect(target(sshd, tmp_path / "x", "paramiko"))
    try:
        assert client.get_transport().local_cipher == "aes256-gcm@openssh.com"
    finally:
        client.close()


def test_unknown_host_key_is_refused(sshd, tmp_path, engine):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(TransportError, match="not in") as info:
        transport.sftp_check(target(sshd, tmp_path / "x", engine, known_hosts=str(empty)))
    assert info.value.details == {"reason": "host_key_unknown", "option": "sftp.known_hosts"}


def test_missing_known_hosts_is_refused_when_strict(sshd, tmp_path, engine):
    with pytest.raises(TransportError, match="does not exist") as info:
        transport.sftp_check(target(sshd, tmp_path / "x", engine, known_hosts=str(tmp_path / "none")))
    assert info.value.details["option"] == "sftp.known_hosts"


def test_changed_host_key_is_refused(sshd, tmp_path, engine):
    other = sshd_fixture.write_keypair(str(tmp_path / "other"))
    known = tmp_path / "known_hosts"
    known.write_text("[127.0.0.1]:%d %s\n" % (sshd.port, other))
    for checking in ("strict", "accept_new"):  # accept_new accepts new hosts, never changed keys
        with pytest.raises(TransportError, match="does not match") as info:
            transport.sftp_check(target(sshd, tmp_path / "x", engine, known_hosts=str(known),
                                        host_key_checking=checking))
        assert info.value.details["reason"] == "host_key_mismatch"


def test_a_known_hosts_file_with_a_blank_in_its_name(sshd, tmp_path, engine):
    known = tmp_path / "known hosts"
    known.write_text(open(sshd.known_hosts, encoding="ascii").read())
    transport.sftp_check(target(sshd, tmp_path / "x", engine, known_hosts=str(known)))


def test_accept_new_records_the_key(sshd, tmp_path, engine):
    known = tmp_path / "known_hosts"
    transport.sftp_check(target(sshd, tmp_path / "x", engine, known_hosts=str(known), host_key_checking="accept_new"))
    assert sshd.host_key_line.split()[2] in known.read_text()
    transport.sftp_check(target(sshd, tmp_path / "x", engine, known_hosts=str(known)))  # now known, strict passes


def test_wrong_client_key_fails_authentication(sshd, tmp_path, engine):
    sshd_fixture.write_keypair(str(tmp_path / "stranger"))
    with pytest.raises(TransportError, match="authentication") as info:
        transport.sftp_check(target(sshd, tmp_path / "x", engine, private_key=str(tmp_path / "stranger")))
    assert info.value.details["option"] == "sftp.private_key"


def test_missing_remote_directory(sshd, tmp_path, engine):
    with pytest.raises(TransportError, match="does not exist") as info:
        transport.sftp_check(target(sshd, tmp_path / "nowhere" / "image.qstream", engine))
    assert info.value.details["option"] == "sftp.path"
    src = make_file(tmp_path / "image", 10)
    with pytest.raises(TransportError) as info:
        transport.send_sftp(src, sealer(), target(sshd, tmp_path / "nowhere" / "image.qstream", engine))
    assert info.value.details["option"] == "sftp.path"


def test_failed_upload_leaves_no_partial_file(sshd, tmp_path, engine):
    src = make_file(tmp_path / "image", 3 * MiB)
    remote = tmp_path / "dc"
    (remote / "image.qstream").mkdir(parents=True)  # the final rename cannot replace a directory
    with pytest.raises(TransportError, match="partial upload was removed"):
        transport.send_sftp(src, sealer(), target(sshd, remote / "image.qstream", engine))
    assert os.listdir(str(remote)) == ["image.qstream"] and os.listdir(str(remote / "image.qstream")) == []


def test_upload_replaces_an_older_file_atomically(sshd, tmp_path, engine):
    remote = tmp_path / "dc"
    remote.mkdir()
    (remote / "image.qstream").write_bytes(b"old")
    src = make_file(tmp_path / "image", 1000)
    transport.send_sftp(src, sealer(), target(sshd, remote / "image.qstream", engine))
    transport.receive_file(str(remote / "image.qstream"), str(remote / "image"), lambda h: [KEY])
    assert transport.file_sha256(str(remote / "image")) == transport.file_sha256(src)


def test_nothing_listening(tmp_path):
    port = sshd_fixture.free_port()
    with pytest.raises(TransportError) as info:
        transport.sftp_check(SftpTarget(host="127.0.0.1", port=port, path="/tmp/x", timeout=0.5,
                                        known_hosts=str(tmp_path / "kh"), host_key_checking="accept_new"))
    assert info.value.details["option"] == "sftp.host"


def test_the_fixture_stops_its_sshd(tmp_path):
    server = sshd_fixture.Sshd(str(tmp_path / "sshd")).start()
    server.stop()
    assert server.process.returncode is not None
    shutil.rmtree(str(tmp_path / "sshd"))


def test_auto_prefers_openssh_and_falls_back_to_paramiko(sshd, tmp_path, monkeypatch):
    assert transport.sftp_engine(target(sshd, tmp_path / "x")) == "openssh"
    assert transport.sftp_engine(target(sshd, tmp_path / "x", passphrase="secret")) == "paramiko"
    monkeypatch.setenv("PATH", str(tmp_path))  # no ssh client on this host
    assert transport.sftp_engine(target(sshd, tmp_path / "x")) == "paramiko"
    with pytest.raises(TransportError, match="openssh-client") as info:
        transport.sftp_check(target(sshd, tmp_path / "x", "openssh"))
    assert info.value.details["option"] == "sftp.engine"


def test_openssh_cannot_take_a_passphrase(sshd, tmp_path):
    with pytest.raises(TransportError, match="paramiko") as info:
        transport.sftp_check(target(sshd, tmp_path / "x", "openssh", passphrase="secret"))
    assert info.value.details["option"] == "sftp.engine"


def test_a_connection_lost_mid_upload_fails_clearly_and_installs_nothing(tmp_path, engine):
    # The server side of the connection dies while the upload runs: the task fails, nothing is
    # renamed into place, and the message says where the partial upload may remain.
    src = make_file(tmp_path / "image", 256 * MiB)
    remote = tmp_path / "dc"
    remote.mkdir()
    with sshd_fixture.Sshd(str(tmp_path / "sshd")) as server:
        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("error", _upload_error(
            src, target(server, remote / "image.qstream", engine))))
        thread.start()
        deadline = time.monotonic() + 30
        while not any(os.path.getsize(str(remote / name)) > 4 * MiB for name in parts(remote)):
            assert time.monotonic() < deadline and thread.is_alive(), "the upload did not start"
            time.sleep(0.01)
        subprocess.run(["pkill", "-KILL", "-P", str(server.process.pid)], check=False)  # its sessions
        thread.join(60)
    error = box["error"]
    assert isinstance(error, TransportError) and error.details["reason"] == "connection"
    assert "may remain" in error.msg and parts(remote)[0] in error.msg
    assert not os.path.exists(str(remote / "image.qstream"))


def _upload_error(src, where):
    try:
        transport.send_sftp(src, sealer(), where)
    except TransportError as exc:
        return exc
    return None
