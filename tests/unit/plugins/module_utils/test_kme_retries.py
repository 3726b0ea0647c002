# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KmeClient's retries, counted on the server: which failures are retried, and which are not."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.qkd.nfv.plugins.module_utils.kme import (
    KmeAuthenticationError, KmeClient, KmeUnavailableError)

UUID1 = "bc490419-7d60-487f-adc1-4ddcc177c139"


def client(pki, url, retries=2, **options):
    return KmeClient(url, pki.path("ca"), pki.path("sae-a"), pki.key("sae-a"), kme_id="kme-test",
                     retries=retries, backoff_factor=0, **options)


def test_status_retries_503_then_succeeds(pki, kme):
    kme.reply(503, {"message": "busy"})
    kme.reply(503, {"message": "busy"})
    assert client(pki, kme.url, retries=2).status("sae-b")["key_size"] == 256
    assert kme.count("status") == 3


def test_status_gives_up_after_the_retries(pki, kme):
    for _attempt in range(4):
        kme.reply(503, {"message": "key data access error"})
    with pytest.raises(KmeUnavailableError, match=r"HTTP 503 after 2 retries\): key data access error"):
        client(pki, kme.url, retries=2).status("sae-b")
    assert kme.count("status") == 3


def test_no_retries_means_one_request(pki, kme):
    kme.reply(503, {"message": "busy"})
    with pytest.raises(KmeUnavailableError, match=r"HTTP 503\)"):
        client(pki, kme.url, retries=0).status("sae-b")
    assert kme.count() == 1


def test_status_retries_a_dropped_connection(pki, kme):
    kme.reply(drop=True)
    assert client(pki, kme.url).status("sae-b")
    assert kme.count("status") == 2


def test_dec_keys_retries_503_and_dropped_connections(pki, kme):
    kme.reply(503, {"message": "busy"})
    kme.reply(drop=True)
    kme.reply(200, {"keys": [{"key_ID": UUID1, "key": "AAAAAAAAAAAAAAAAAAAAAA=="}]})
    keys = client(pki, kme.url, retries=3).dec_keys("sae-b", [UUID1])
    assert [k.key_id for k in keys] == [UUID1]
    assert kme.count("dec_keys") == 3


def test_enc_keys_retries_503_where_no_key_was_delivered(pki, kme):
    kme.reply(503, {"message": "busy"})
    assert len(client(pki, kme.url).enc_keys("sae-b", number=2)) == 2
    assert kme.count("enc_keys") == 2
    assert len(kme.pool) == 2  # only the successful request took keys


def test_enc_keys_does_not_retry_after_the_request_was_sent(pki, kme):
    kme.reply(drop=True)
    with pytest.raises(KmeUnavailableError, match="did not complete enc_keys .*not retried because the "
                                                  "KME may already have taken keys"):
        client(pki, kme.url, retries=3).enc_keys("sae-b")
    assert kme.count("enc_keys") == 1


def test_enc_keys_read_timeout_is_not_retried(pki, kme):
    kme.reply(200, {"keys": []}, delay=1.0)
    with pytest.raises(KmeUnavailableError, match="not retried"):
        client(pki, kme.url, retries=3, timeout=0.2).enc_keys("sae-b")
    assert kme.count("enc_keys") == 1


def test_status_read_timeout_is_retried(pki, kme):
    kme.reply(200, {}, delay=1.0)
    assert client(pki, kme.url, retries=1, timeout=0.2).status("sae-b")
    assert kme.count("status") == 2


def test_unreachable_kme_is_retried_then_reported(pki):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for call in (lambda c: c.status("sae-b"), lambda c: c.enc_keys("sae-b"),
                 lambda c: c.dec_keys("sae-b", [UUID1])):
        with pytest.raises(KmeUnavailableError,
                           match=r"cannot connect to KME kme-test at https://127.0.0.1:%d after 2 retries: "
                                 r".*(refused|Connection)" % port) as info:
            call(client(pki, "https://127.0.0.1:%d" % port))
        assert info.value.details == {"kme_id": "kme-test", "kme_url": "https://127.0.0.1:%d" % port}


def test_tls_failures_are_not_retried(pki):
    """A plain-HTTP listener where the KME should be: every attempt is one accepted connection."""
    accepted = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        def serve():
            while True:
                try:
                    conn, _address = listener.accept()
                except OSError:
                    return
                accepted.append(1)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                conn.close()
        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(KmeAuthenticationError, match="TLS handshake with KME kme-test .*WRONG_VERSION"):
            client(pki, "https://127.0.0.1:%d" % port, retries=3).status("sae-b")
        listener.shutdown(socket.SHUT_RDWR)
    thread.join(5)
    # Retrying cannot fix a TLS failure.
    assert len(accepted) == 1
