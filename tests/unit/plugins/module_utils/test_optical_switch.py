# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small optical switch speaking RESTCONF over real sockets, for the optical client and module tests.

It serves the Polatis optical-switch model three ways, with the status codes and error bodies of
OpenDaylight and of the switch itself: ODL RFC 8040 (/rests, errors as `errors`), ODL draft-02
(/restconf) and the switch's own RESTCONF (/api, errors as `ietf-restconf:errors`). It enforces
the switch's rules (one pair per ingress, a port in one pair, no self-loop, enabled ports only)
and models light: an egress is lit (source power minus insertion loss) once a pair has settled.
The tests at the end pin this behaviour to the wire reference, independently of the client.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NO_LIGHT_DBM = -60.0
MOUNT = 'network-topology:network-topology/topology%stopology-netconf/node%s'
ODL_RFC8040 = re.compile(r'^/rests/(data|operations)/' + MOUNT % ('=', '=') + r'([^/?]+)/yang-ext:mount(.*)$')
ODL_DRAFT02 = re.compile(r'^/restconf/(config|operational|operations)/' + MOUNT % ('/', '/')
                         + r'([^/?]+)/yang-ext:mount(.*)$')
NATIVE = re.compile(r'^/api/(data|operations)(.*)$')


class Fault:
    """Answer the (skip+1)-th request matching method and path_part with an error instead of serving it."""

    def __init__(self, method, status, tag, message, skip=0, path_part=''):
        self.method, self.status, self.tag, self.message = method, status, tag, message
        self.skip, self.path_part = skip, path_part


class SwitchServer:
    """The switch and its RESTCONF front on 127.0.0.1 (HTTP, or HTTPS when given an ssl context)."""

    def __init__(self, ports=16, pairs=None, light=None, node_id='polatis-1', odl_auth=('admin', 'admin'),
                 native_auth=('admin', 'root'), insertion_loss=1.5, settle_s=0.0, ssl_context=None,
                 xml_errors=False):
        self.node_id = node_id
        self.ports = {port: 'ENABLED' for port in range(1, ports + 1)}
        self.pairs = dict(pairs or {})
        self.light = dict(light or {})
        self.insertion_loss = insertion_loss
        self.settle_s = settle_s
        self.xml_errors = xml_errors
        self.auth = {'odl': odl_auth, 'native': native_auth}
        self.faults = []
        self.log = []  # (method, path, body) of every request, in order
        self.lock = threading.Lock()
        self._settled_at = {ingress: 0.0 for ingress in self.pairs}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _serve(self):
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                status, body = server.handle(self.command, self.path, self.headers, raw)
                payload = b''
                if isinstance(body, bytes):
                    payload, ctype = body, 'application/yang-data+xml'
                elif body is not None:
                    payload, ctype = json.dumps(body).encode(), 'application/yang-data+json'
                self.send_response(status)
                if payload:
                    self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        scheme = 'http'
        if ssl_context is not None:
            self.httpd.socket = ssl_context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = 'https'
        self.url = '%s://127.0.0.1:%d' % (scheme, self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def writes(self):
        """The logged requests that would change something (everything but GET)."""
        return [entry for entry in self.log if entry[0] != 'GET']

    # -- request dispatch

    def handle(self, method, target, headers, raw):
        path, _sep, query = target.partition('?')
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = ValueError
        with self.lock:
            self.log.append((method, target, None if body is ValueError else body))
            match = ODL_RFC8040.match(path)
            if match:
                return self._dispatch('rfc8040', method, match.group(1), match.group(2), match.group(3), query,
                                      headers, body)
            match = ODL_DRAFT02.match(path)
            if match:
                return self._dispatch('draft02', method, match.group(1), match.group(2), match.group(3), query,
                                      headers, body)
            match = NATIVE.match(path)
            if match:
                return self._dispatch('native', method, match.group(1), None, match.group(2), query, headers, body)
            if path == '/api' and self._authorised('native', headers):
                return 200, None
            return self._error('rfc8040', 404, 'invalid-value', 'No such resource: %s' % path)

    def _dispatch(self, era, method, store, node, rest, query, headers, body):
        if not self._authorised('native' if era == 'native' else 'odl', headers):
            return 401, None
        if node is not None and node != self.node_id:
            if era == 'draft02':
                return self._error(era, 404, 'data-missing', 'Mount point does not exist.')
            return self._error(era, 503, 'resource-denied-transport', 'Mount point does not exist.')
        fault = next((f for f in self.faults if f.method == method and f.path_part in rest), None)
        if fault is not None:
            if fault.skip:
                fault.skip -= 1
            else:
                self.faults.remove(fault)
                return self._error(era, fault.status, fault.tag, fault.message)
        if body is ValueError:
            return self._error(era, 400, 'malformed-message', 'Error parsing input: not JSON')
        if query and query not in ('content=config', 'content=nonconfig', 'content=all'):
            return self._error(era, 400, 'invalid-value', 'Invalid query: %s' % query)
        if store == 'operations':
            return self._rpc(era, rest, body)
        key_sep = '/' if era == 'draft02' else '='
        if rest == '/optical-switch:cross-connects':
            if method == 'GET':
                return self._get_pairs(era)
            if method == 'POST':
                return self._post_pair(era, body)
        pair = re.match(r'^/optical-switch:cross-connects/pair%s(\d+)$' % key_sep, rest)
        if pair:
            ingress = int(pair.group(1))
            return {'GET': self._get_pair, 'PUT': self._put_pair, 'DELETE': self._delete_pair}.get(
                method, lambda *a: self._error(era, 405, 'operation-not-supported', method))(era, ingress, body)
        if rest == '/optical-switch:port-config' and method == 'GET':
            return 200, {self._name(era, 'port-config'): {'port': [
                {'port-id': port, 'status': status, 'label': ''} for port, status in sorted(self.ports.items())]}}
        power = re.match(r'^/optical-switch:opm-power/port%s(\d+)$' % key_sep, rest)
        if power and method == 'GET':
            port = int(power.group(1))
            if port not in self.ports:
                return self._error(era, 409 if era == 'rfc8040' else 404, 'data-missing', 'Data does not exist')
            return 200, {self._name(era, 'port'): [{'port-id': port, 'power': '%.2f' % self._power(port)}]}
        return self._error(era, 409 if era == 'rfc8040' else 404, 'data-missing',
                           'Request could not be completed because the relevant data model content does not exist')

    # -- resources

    def _get_pairs(self, era):
        if not self.pairs:
            if era == 'native':
                return 204, None
            return self._error(era, 409 if era == 'rfc8040' else 404, 'data-missing',
                               'Request could not be completed because the relevant data model content does not exist')
        return 200, {self._name(era, 'cross-connects'): {'pair': [
            {'ingress': i, 'egress': e} for i, e in sorted(self.pairs.items())]}}

    def _get_pair(self, era, ingress, _body):
        if ingress not in self.pairs:
            return self._error(era, 404 if era == 'native' else 409, 'data-missing', 'Data does not exist')
        return 200, {self._name(era, 'pair'): [{'ingress': ingress, 'egress': self.pairs[ingress]}]}

    def _post_pair(self, era, body):
        item, error = self._pair_from(era, body)
        if error:
            return error
        if item[0] in self.pairs:
            return self._error(era, 409, 'data-exists', 'Data already exists')
        return self._connect(era, *item) or (201, None)

    def _put_pair(self, era, ingress, body):
        item, error = self._pair_from(era, body)
        if error:
            return error
        if item[0] != ingress:
            return self._error(era, 400, 'invalid-value',
                               "The value '%d' for key 'ingress' specified in the URI doesn't match the value "
                               "'%d' specified in the message body. " % (ingress, item[0]))
        existed = ingress in self.pairs
        return self._connect(era, *item) or (204 if existed else 201, None)

    def _delete_pair(self, era, ingress, _body):
        if ingress not in self.pairs:
            return self._error(era, 404 if era == 'native' else 409, 'data-missing', 'Data does not exist')
        del self.pairs[ingress]
        return 204, None

    def _connect(self, era, ingress, egress):
        """Apply a pair after the device's checks; an error response or None."""
        for port in (ingress, egress):
            if port not in self.ports:
                return self._error(era, 400, 'invalid-value', 'port %d does not exist' % port)
            if self.ports[port] != 'ENABLED':
                return self._error(era, 409, 'resource-denied', 'port %d is %s' % (port, self.ports[port]))
        if ingress == egress:
            return self._error(era, 400, 'invalid-value', 'ingress and egress are the same port')
        for other, other_egress in self.pairs.items():
            if other != ingress and {ingress, egress} & {other, other_egress}:
                return self._error(era, 409, 'in-use', 'one or both ports are already in use')
        self.pairs[ingress] = egress
        self._settled_at[ingress] = time.monotonic() + self.settle_s
        return None

    def _rpc(self, era, rest, body):
        if rest != '/optical-switch:port-set-state' or not isinstance(body, dict) or 'input' not in body:
            return self._error(era, 400, 'malformed-message', 'Error parsing input: no input')
        for port in body['input'].get('port-enab', []):
            self.ports[int(port)] = 'ENABLED'
        for port in body['input'].get('port-disab', []):
            self.ports[int(port)] = 'DISABLED'
        return 204, None

    # -- helpers

    def _power(self, port):
        if port in self.light:
            return self.light[port]
        for ingress, egress in self.pairs.items():
            if egress == port and ingress in self.light and time.monotonic() >= self._settled_at.get(ingress, 0):
                return self.light[ingress] - self.insertion_loss
        return NO_LIGHT_DBM

    def _pair_from(self, era, body):
        items = body.get(self._name(era, 'pair'), body.get('pair')) if isinstance(body, dict) else None
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            return None, self._error(era, 400, 'malformed-message', 'Error parsing input: expected one pair')
        try:
            return (int(items[0]['ingress']), int(items[0]['egress'])), None
        except (KeyError, TypeError, ValueError):
            return None, self._error(era, 400, 'malformed-message', 'Error parsing input: ingress and egress')

    @staticmethod
    def _name(era, name):
        return name if era == 'draft02' else 'optical-switch:' + name

    def _authorised(self, realm, headers):
        user, password = self.auth[realm]
        expected = 'Basic ' + base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
        return headers.get('Authorization') == expected

    def _error(self, era, status, tag, message):
        if self.xml_errors:
            return status, ('<errors xmlns="urn:ietf:params:xml:ns:yang:ietf-restconf"><error>'
                            '<error-type>protocol</error-type><error-tag>%s</error-tag>'
                            '<error-message>%s</error-message></error></errors>' % (tag, message)).encode()
        top = 'ietf-restconf:errors' if era == 'native' else 'errors'
        return status, {top: {'error': [{'error-type': 'protocol', 'error-tag': tag, 'error-message': message}]}}


# ---------------------------------------------------------------- the double follows the reference


def _call(server, method, path, body=None, auth=('admin', 'admin')):
    conn = http.client.HTTPConnection('127.0.0.1', int(server.url.rsplit(':', 1)[1]), timeout=5)
    headers = {'Authorization': 'Basic ' + base64.b64encode(('%s:%s' % auth).encode()).decode(),
               'Content-Type': 'application/yang-data+json'}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    return response.status, json.loads(raw) if raw else None


R = '/rests/data/network-topology:network-topology/topology=topology-netconf/node=polatis-1/yang-ext:mount'


def test_rfc8040_codes_follow_the_reference():
    with SwitchServer(pairs={1: 9}) as server:
        pair = {'optical-switch:pair': [{'ingress': 5, 'egress': 13}]}
        assert _call(server, 'POST', R + '/optical-switch:cross-connects', pair)[0] == 201
        status, body = _call(server, 'POST', R + '/optical-switch:cross-connects', pair)
        assert (status, body['errors']['error'][0]['error-tag']) == (409, 'data-exists')
        taken = {'optical-switch:pair': [{'ingress': 6, 'egress': 9}]}
        status, body = _call(server, 'PUT', R + '/optical-switch:cross-connects/pair=6', taken)
        assert (status, body['errors']['error'][0]['error-tag']) == (409, 'in-use')
        moved = {'optical-switch:pair': [{'ingress': 5, 'egress': 14}]}
        assert _call(server, 'PUT', R + '/optical-switch:cross-connects/pair=5', moved)[0] == 204
        assert _call(server, 'DELETE', R + '/optical-switch:cross-connects/pair=5')[0] == 204
        status, body = _call(server, 'DELETE', R + '/optical-switch:cross-connects/pair=5')
        assert (status, body['errors']['error'][0]['error-tag']) == (409, 'data-missing')
        assert _call(server, 'GET', R + '/optical-switch:cross-connects', auth=('admin', 'bad'))[0] == 401
        status, body = _call(server, 'GET', R.replace('polatis-1', 'nope') + '/optical-switch:cross-connects')
        assert (status, body['errors']['error'][0]['error-tag']) == (503, 'resource-denied-transport')
        assert server.pairs == {1: 9}


def test_native_api_answers_with_the_ietf_restconf_spelling():
    with SwitchServer(pairs={}) as server:
        assert _call(server, 'GET', '/api/data/optical-switch:cross-connects', auth=('admin', 'root')) == (204, None)
        status, body = _call(server, 'DELETE', '/api/data/optical-switch:cross-connects/pair=3', auth=('admin', 'root'))
        assert status == 404 and body['ietf-restconf:errors']['error'][0]['error-tag'] == 'data-missing'


def test_light_reaches_an_egress_only_through_a_settled_pair():
    with SwitchServer(pairs={}, light={2: -3.0}, settle_s=0.2) as server:
        power = R + '/optical-switch:opm-power/port=12?content=nonconfig'
        assert _call(server, 'GET', power)[1]['optical-switch:port'][0]['power'] == '-60.00'
        _call(server, 'POST', R + '/optical-switch:cross-connects', {'pair': [{'ingress': 2, 'egress': 12}]})
        assert _call(server, 'GET', power)[1]['optical-switch:port'][0]['power'] == '-60.00'
        time.sleep(0.25)
        assert _call(server, 'GET', power)[1]['optical-switch:port'][0]['power'] == '-4.50'


def make_tls(tmp_path):
    """A test CA and a server certificate for 127.0.0.1: (server ssl context, CA file path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    validity = dict(not_valid_before=now - datetime.timedelta(minutes=5),
                    not_valid_after=now + datetime.timedelta(days=1))

    def cert(subject, issuer, public_key, signing_key, extensions):
        builder = x509.CertificateBuilder(subject_name=subject, issuer_name=issuer, public_key=public_key,
                                          serial_number=x509.random_serial_number(), **validity)
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'optical test CA')])
    ca = cert(ca_name, ca_name, ca_key.public_key(), ca_key, [(x509.BasicConstraints(ca=True, path_length=None), True)])
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'controller')]), ca_name, key.public_key(), ca_key,
                [(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]), False)])
    pem = serialization.Encoding.PEM
    (tmp_path / 'ca.crt').write_bytes(ca.public_bytes(pem))
    (tmp_path / 'server.pem').write_bytes(
        leaf.public_bytes(pem) + key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tmp_path / 'server.pem'))
    return context, str(tmp_path / 'ca.crt')
