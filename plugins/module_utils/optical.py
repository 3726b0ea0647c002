# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RESTCONF client for an optical switch's cross-connects, and the pure diff of pair sets.

Both back-ends speak the Polatis `optical-switch` YANG model (`cross-connects/pair{ingress, egress}`):
- `odl`: the switch mounted in OpenDaylight over NETCONF, RFC 8040 paths under /rests
  (`api='rfc8040'`) or the older draft-bierman-02 paths under /restconf (`api='draft02'`);
- `polatis`: the switch's own RESTCONF under /api.

Pairs are plain dicts {ingress: egress}: the YANG list is keyed by ingress, and a port takes part
in one pair at most. Plain Python: usable without Ansible, e.g. by the scheduler to re-point a Bob.
"""

from __future__ import annotations

import base64
import collections
import json
import socket
import ssl
import time
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit
from urllib.request import HTTPSHandler, Request, build_opener
from xml.etree import ElementTree

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

BACKENDS = ('odl', 'polatis')
APIS = ('rfc8040', 'draft02')
STATES = ('merged', 'replaced', 'overridden', 'deleted', 'gathered')
MAX_PORT = 65535  # optical-switch portFormat: uint32 1..65535
PORT_STATUS_NAMES = {0: 'UNSUPPORTED', 1: 'ENABLED', 2: 'DISABLED', 3: 'FAILED'}
_NT_NETCONF = 'network-topology:network-topology/topology%stopology-netconf/node%s%s/yang-ext:mount'

# One step of a plan. action: 'create' (POST, the ingress is free), 'replace' (PUT, re-point or
# put back) or 'delete' (DELETE). previous: the egress before the step (None if there was none).
Change = collections.namedtuple('Change', 'action ingress egress previous')
# What reconcile() did or would do: pairs before and after ({ingress: egress}) and the calls made.
Outcome = collections.namedtuple('Outcome', 'before after commands')


class OpticalError(QkdNfvError):
    """A switch operation that failed or would conflict.

    When the server answered: `status` (HTTP code), `tag` (RESTCONF error-tag, e.g. 'data-exists',
    'in-use', 'data-missing') and `server_message` (its error-message), whichever error spelling
    (`errors` or `ietf-restconf:errors`, JSON or XML) it used.
    """

    def __init__(self, msg, status=None, tag=None, server_message=None, **details):
        for key, value in (('http_status', status), ('error_tag', tag), ('error_message', server_message)):
            if value is not None:
                details[key] = value
        super().__init__(msg, **details)
        self.status = status
        self.tag = tag
        self.server_message = server_message


# ---------------------------------------------------------------- the client


class OpticalClient:
    """Cross-connects, port status and optical power of one switch, through one back-end.

    pairs()/ports()/power() read; create()/replace()/delete() write one pair and return the
    command they sent ({method, path, body}); apply() runs a plan and undoes it if a step fails.
    Every failure is an OpticalError.
    """

    def __init__(self, url, node_id=None, username=None, password=None, backend='odl', api='rfc8040',
                 validate_certs=True, ca_cert=None, timeout=10):
        if backend not in BACKENDS:
            raise OpticalError('backend %r is not supported: use one of %s' % (backend, ', '.join(BACKENDS)))
        if api not in APIS:
            raise OpticalError('api %r is not supported: use one of %s' % (api, ', '.join(APIS)))
        parts = urlsplit(url or '')
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise OpticalError('controller_url %r is not an http:// or https:// URL' % (url,))
        if backend == 'odl' and not node_id:
            raise OpticalError('node_id is required with backend odl: the id of the switch mounted in '
                               'OpenDaylight, e.g. polatis-1')
        if not timeout or timeout <= 0:
            raise OpticalError('timeout must be a positive number of seconds, not %r' % (timeout,))
        self.url = url.rstrip('/')
        self.node_id = node_id
        self.backend = backend
        self.api = api if backend == 'odl' else 'rfc8040'
        self.timeout = timeout
        self._username = username
        self._headers = {}
        if username is not None:
            token = base64.b64encode(('%s:%s' % (username, password or '')).encode('utf-8')).decode('ascii')
            self._headers['Authorization'] = 'Basic ' + token
        media = 'application/json' if self.api == 'draft02' else 'application/yang-data+json'
        self._headers.update({'Accept': media, 'Content-Type': media})
        self._opener = build_opener(HTTPSHandler(context=_tls_context(parts.scheme, validate_certs, ca_cert)))

    # -- paths and bodies of the chosen back-end

    def _data(self, content=None):
        """Root of the switch's data tree: the NETCONF mount in ODL, /api/data on the switch."""
        if self.backend == 'polatis':
            return '/api/data'
        if self.api == 'draft02':
            store = 'operational' if content == 'nonconfig' else 'config'
            node = quote(self.node_id, safe=':')
            return '/restconf/%s/' % store + _NT_NETCONF % ('/', '/', node)
        return '/rests/data/' + _NT_NETCONF % ('=', '=', quote(self.node_id, safe=''))

    def _operations(self):
        if self.backend == 'polatis':
            return '/api/operations'
        if self.api == 'draft02':
            return '/restconf/operations/' + _NT_NETCONF % ('/', '/', quote(self.node_id, safe=':'))
        return '/rests/operations/' + _NT_NETCONF % ('=', '=', quote(self.node_id, safe=''))

    def _path(self, resource, key=None, content=None):
        path = self._data(content) + '/optical-switch:' + resource
        if key is not None:
            path += ('/%d' if self.api == 'draft02' else '=%d') % key
        # draft-02 picks the datastore by path, the switch's own API serves everything at once.
        if content and self.backend == 'odl' and self.api == 'rfc8040':
            path += '?content=' + content
        return path

    def _pair_body(self, ingress, egress):
        name = 'pair' if self.api == 'draft02' else 'optical-switch:pair'
        return {name: [{'ingress': ingress, 'egress': egress}]}

    def command(self, change):
        """The RESTCONF call that carries out one Change: {method, path[, body]}."""
        if change.action == 'create':
            return {'method': 'POST', 'path': self._path('cross-connects'),
                    'body': self._pair_body(change.ingress, change.egress)}
        if change.action == 'replace':
            return {'method': 'PUT', 'path': self._path('cross-connects/pair', change.ingress),
                    'body': self._pair_body(change.ingress, change.egress)}
        if change.action == 'delete':
            return {'method': 'DELETE', 'path': self._path('cross-connects/pair', change.ingress)}
        raise ValueError('unknown change action %r' % (change.action,))

    # -- reads

    def pairs(self, content='config'):
        """The cross-connects as {ingress: egress}, from the config or the operational (nonconfig) data."""
        if content not in ('config', 'nonconfig'):
            raise OpticalError("content must be 'config' or 'nonconfig', not %r" % (content,))
        body = self._get(self._path('cross-connects', content=content), 'read the cross-connects', missing_ok=True)
        container = _member(body, 'cross-connects') or {}
        # Revisions of optical-switch before 2017-08-04 call the list `pairs`.
        items = _member(container, 'pair', _member(container, 'pairs', []))
        try:
            return dict(sorted((int(item['ingress']), int(item['egress'])) for item in _as_list(items)))
        except (KeyError, TypeError, ValueError) as exc:
            raise OpticalError('the switch answered with cross-connects this client cannot read (%s): %s'
                               % (exc, _excerpt(json.dumps(body))))

    def ports(self):
        """The switch's ports as {port_id: status}, status one of ENABLED, DISABLED, FAILED, UNSUPPORTED."""
        body = self._get(self._path('port-config', content='nonconfig'), 'read the port status', missing_ok=True)
        ports = {}
        for item in _as_list(_member(_member(body, 'port-config') or {}, 'port', [])):
            try:
                status = item.get('status', 'ENABLED')
                ports[int(item['port-id'])] = PORT_STATUS_NAMES.get(status, status) if isinstance(status, int) \
                    else str(status).rsplit(':', maxsplit=1)[-1].upper()
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise OpticalError('the switch answered with a port this client cannot read (%s): %s'
                                   % (exc, _excerpt(json.dumps(item))))
        return dict(sorted(ports.items()))

    def power(self, port):
        """The optical power measured at a port, in dBm."""
        _check_port_number(port, 'port')
        path = self._path('opm-power/port', port, content='nonconfig')
        body = self._get(path, 'read the optical power of port %d' % port)
        items = _as_list(_member(body, 'port', _member(_member(body, 'opm-power') or {}, 'port', [])))
        for item in items:
            if int(item.get('port-id', port)) == port and 'power' in item:
                return float(item['power'])  # decimal64: a JSON number or, per RFC 7951, a string
        raise OpticalError('the switch reported no optical power for port %d: %s' % (port, _excerpt(json.dumps(body))))

    # -- writes

    def create(self, ingress, egress):
        """POST a new pair; fails with tag 'data-exists' if the ingress already has one."""
        return self._run(Change('create', ingress, egress, None))

    def replace(self, ingress, egress):
        """PUT the pair of an ingress: creates it or re-points it in one step."""
        return self._run(Change('replace', ingress, egress, None))

    def delete(self, ingress):
        """DELETE the pair of an ingress; fails with tag 'data-missing' if there is none."""
        return self._run(Change('delete', ingress, None, None))

    def set_port_state(self, enable=(), disable=()):
        """Enable and/or disable ports through the port-set-state RPC."""
        payload = {}
        if enable:
            payload['port-enab'] = [int(port) for port in enable]
        if disable:
            payload['port-disab'] = [int(port) for port in disable]
        path = self._operations() + '/optical-switch:port-set-state'
        self._request('POST', path, {'input': payload}, 'set the state of ports %s' % payload)

    def apply(self, changes):
        """Carry out a plan in order; if a step fails, undo the steps done (newest first) and raise.

        Returns the commands sent. The raised OpticalError says which step failed and whether
        the switch was put back; its details carry `commands` (sent) and `rolled_back`.
        """
        done, commands = [], []
        for change in changes:
            try:
                commands.append(self._run(change))
            except OpticalError as exc:
                rolled_back, undo_error = self._undo(done)
                if undo_error is not None:
                    outcome = ('putting back the %d change(s) made before it failed too (%s): the switch may be '
                               'half-changed, read it with state=gathered' % (len(done), undo_error.msg))
                elif done:
                    outcome = 'the %d change(s) made before it were undone' % len(done)
                else:
                    outcome = 'nothing had been changed'
                raise OpticalError('%s; %s' % (exc.msg, outcome), exc.status, exc.tag, exc.server_message,
                                   commands=commands, failed_command=self.command(change),
                                   rolled_back=rolled_back) from None
            done.append(change)
        return commands

    def _undo(self, done):
        """Put back the changes in `done`, newest first; (commands sent, the error that stopped it or None)."""
        sent = []
        for change in reversed(done):
            if change.action == 'create':
                undo = Change('delete', change.ingress, None, change.egress)
            else:  # re-point or re-create the pair as it was
                undo = Change('replace', change.ingress, change.previous, change.egress)
            try:
                sent.append(self._run(undo))
            except OpticalError as exc:
                return sent, exc
        return sent, None

    def _run(self, change):
        _check_port_number(change.ingress, 'ingress')
        if change.action != 'delete':
            _check_port_number(change.egress, 'egress')
        command = self.command(change)
        self._request(command['method'], command['path'], command.get('body'),
                      '%s pair %s' % (change.action, _pair_text(change.ingress, change.egress)))
        return command

    # -- HTTP

    def _get(self, path, what, missing_ok=False):
        try:
            return self._request('GET', path, None, what)
        except OpticalError as exc:
            # An empty list or container reads as data-missing (409 or 404), or 204 on some switches.
            if missing_ok and exc.tag == 'data-missing' and not _mount_missing(exc.tag, exc.server_message):
                return {}
            raise

    def _request(self, method, path, body, what):
        data = None if body is None else json.dumps(body).encode('utf-8')
        request = Request(self.url + path, data=data, method=method, headers=self._headers)
        where = '%s %s%s' % (method, self.url, path)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except HTTPError as exc:
            raise self._http_error(exc.code, _read_quietly(exc), what, where) from None
        except URLError as exc:
            raise self._transport_error(exc.reason, what, where) from None
        except (OSError, HTTPException) as exc:
            raise self._transport_error(exc, what, where) from None
        if not raw.strip():
            return {}
        try:
            return json.loads(raw.decode('utf-8'))
        except ValueError:
            raise OpticalError('cannot %s: %s answered with something that is not JSON: %s'
                               % (what, where, _excerpt(raw.decode('utf-8', 'replace')))) from None

    def _http_error(self, status, raw, what, where):
        tag, message = _server_error(raw)
        said = 'HTTP %d' % status + (' %s' % tag if tag else '') + (': %s' % message if message else '')
        if status == 401:
            server = 'switch' if self.backend == 'polatis' else 'controller'
            return OpticalError('cannot %s: the %s at %s refused the credentials of username %r (%s): '
                                'check username and password' % (what, server, self.url, self._username, said),
                                status, tag, message)
        if self.backend == 'odl' and _mount_missing(tag, message):
            return OpticalError('cannot %s: node_id %r is not a switch mounted in the controller at %s (%s): '
                                'check node_id' % (what, self.node_id, self.url, said), status, tag, message)
        if tag is None and status == 404 and self.backend == 'polatis':
            tag = 'data-missing'  # the switch's own API answers a missing pair with a bare 404
        return OpticalError('cannot %s: %s answered %s' % (what, where, said), status, tag, message)

    def _transport_error(self, reason, what, where):
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = 'set ca_cert to the CA that signed the controller certificate'
        elif isinstance(reason, ssl.SSLError):
            hint = 'check that controller_url speaks TLS, or use http://'
        elif isinstance(reason, (socket.timeout, TimeoutError)):
            hint = 'no answer within timeout=%s s' % self.timeout
        else:
            hint = 'check controller_url and that the controller is running'
        return OpticalError('cannot %s: %s failed: %s (%s)' % (what, where, reason, hint))


def optical_client_from_params(params):
    """An OpticalClient from the options of common.optical_argument_spec() (module params)."""
    return OpticalClient(params['controller_url'], node_id=params.get('node_id'), username=params.get('username'),
                         password=params.get('password'), backend=params.get('backend') or 'odl',
                         api=params.get('api') or 'rfc8040', validate_certs=params.get('validate_certs', True),
                         ca_cert=params.get('ca_cert'), timeout=params.get('timeout') or 10)


def _tls_context(scheme, validate_certs, ca_cert):
    if scheme != 'https':
        return None
    try:
        if validate_certs:
            context = ssl.create_default_context(cafile=ca_cert)
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    except (OSError, ssl.SSLError) as exc:
        raise OpticalError('ca_cert %r cannot be used: %s' % (ca_cert, exc)) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _server_error(raw):
    """(error-tag, error-message) of the first RESTCONF error in a body, JSON or XML; (None, None) if none."""
    text = raw.decode('utf-8', 'replace').strip()
    if not text:
        return None, None
    try:
        doc = json.loads(text)
    except ValueError:
        return _server_error_xml(text)
    if not isinstance(doc, dict):
        return None, _excerpt(text)
    errors = doc.get('errors', doc.get('ietf-restconf:errors'))
    if not isinstance(errors, dict):
        return None, _excerpt(text)
    first = (_as_list(errors.get('error')) or [{}])[0]
    if not isinstance(first, dict):
        return None, _excerpt(text)
    return first.get('error-tag'), first.get('error-message')


def _server_error_xml(text):
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None, _excerpt(text)
    found = {}
    for element in root.iter():
        name = element.tag.rsplit('}', 1)[-1]
        if name in ('error-tag', 'error-message') and name not in found:
            found[name] = (element.text or '').strip()
    return found.get('error-tag'), found.get('error-message') or (None if found else _excerpt(text))


def _mount_missing(tag, message):
    # RFC 8040 ODL: 503 resource-denied-transport; draft-02 ODL: data-missing "Mount point does not exist."
    return tag == 'resource-denied-transport' or 'mount point' in (message or '').lower()


def _read_quietly(http_error):
    try:
        return http_error.read() or b''
    except (OSError, HTTPException):
        return b''


def _member(doc, name, default=None):
    """A JSON member by its module-qualified or plain name (ODL writes either, depending on the era)."""
    if not isinstance(doc, dict):
        return default
    return doc.get('optical-switch:' + name, doc.get(name, default))


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _excerpt(text, limit=300):
    return text if len(text) <= limit else text[:limit] + '...'


# ---------------------------------------------------------------- pure logic: config, diff, plan


def _check_port_number(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PORT:
        raise OpticalError('%s: %r is not a port number (1-%d)' % (name, value, MAX_PORT))


def _pair_text(ingress, egress):
    return '%s->%s' % (ingress, '?' if egress is None else egress)


def pairs_as_list(pairs):
    """{ingress: egress} -> [{'ingress': i, 'egress': e}, ...] sorted by ingress (the module's return shape)."""
    return [{'ingress': ingress, 'egress': egress} for ingress, egress in sorted(pairs.items())]


def pairs_as_text(pairs):
    """One 'ingress -> egress' line per pair: what diff mode shows."""
    return ''.join('%d -> %d\n' % pair for pair in sorted(pairs.items()))


def normalize_config(config, state):
    """The module's `config` list -> {ingress: egress}; egress may be None only for state=deleted.

    Rejects a port number out of range, an ingress twice, an egress twice and ingress == egress,
    naming the entry (config[N]) and the ports.
    """
    wanted, seen_egress = {}, {}
    for index, item in enumerate(config or []):
        where = 'config[%d]' % index
        if not isinstance(item, dict):
            raise OpticalError('%s must be a mapping with ingress and egress, not %r' % (where, item))
        ingress, egress = item.get('ingress'), item.get('egress')
        _check_port_number(ingress, where + '.ingress')
        if egress is None:
            if state != 'deleted':
                raise OpticalError('%s.egress is required with state=%s (pair from ingress %d)' % (where, state, ingress))
        else:
            _check_port_number(egress, where + '.egress')
        if ingress == egress:
            raise OpticalError('%s: ingress and egress are both port %d: a port cannot be connected to itself'
                               % (where, ingress))
        if ingress in wanted:
            raise OpticalError('%s: ingress %d appears twice in config (%s and %s): one ingress has one pair'
                               % (where, ingress, _pair_text(ingress, wanted[ingress]), _pair_text(ingress, egress)))
        if egress is not None and egress in seen_egress:
            raise OpticalError('%s: egress %d appears twice in config (%s and %s): a port is in one pair at most'
                               % (where, egress, _pair_text(seen_egress[egress], egress), _pair_text(ingress, egress)))
        wanted[ingress] = egress
        if egress is not None:
            seen_egress[egress] = ingress
    return wanted


def desired_pairs(wanted, current, state):
    """The pairs the switch should hold after `state` applies `wanted` to `current`.

    merged: current plus wanted (wanted egresses win for their ingresses); pairs on other ports stay.
    replaced: like merged, but an existing pair that uses a port named in `wanted` is removed first.
    overridden: exactly `wanted`.
    deleted: current minus the pairs of the wanted ingresses (only where the egress, if given,
    matches); everything when `wanted` is None.
    A port used by two pairs in the result raises OpticalError naming both pairs.
    """
    if state == 'deleted':
        if wanted is None:
            return {}
        return {i: e for i, e in current.items() if not (i in wanted and wanted[i] in (None, e))}
    if state == 'merged':
        final = dict(current)
    elif state == 'replaced':
        named = set(wanted) | set(wanted.values())
        final = {i: e for i, e in current.items() if i not in named and e not in named}
    elif state == 'overridden':
        final = {}
    else:
        raise OpticalError('state %r cannot change pairs: use one of merged, replaced, overridden, deleted' % (state,))
    final.update(wanted)
    _check_one_pair_per_port(final, wanted, current, state)
    return dict(sorted(final.items()))


def _check_one_pair_per_port(final, wanted, current, state):
    owner = {}
    for ingress, egress in sorted(final.items()):
        for port in (ingress, egress):
            other = owner.setdefault(port, ingress)
            if other == ingress:
                continue
            first, second = sorted((other, ingress), key=lambda i: (i in wanted, i))
            kind = 'config pair' if first in wanted else 'existing pair'
            hint = ('; use state=replaced to take the port over, or delete that pair first'
                    if state == 'merged' and first not in wanted else '')
            raise OpticalError('port %d would be in two pairs: %s %s and config pair %s%s'
                               % (port, kind, _pair_text(first, final[first]), _pair_text(second, final[second]),
                                  hint))


def plan_changes(current, final):
    """The ordered Changes that turn `current` into `final`, never putting a port in two pairs at once.

    Deletes first; then each create or re-point as soon as both its ports are free. Re-points that
    wait on each other (two pairs swapping egresses) are untangled by deleting one of them and
    creating it again once its port is free.
    """
    changes = [Change('delete', i, None, e) for i, e in sorted(current.items()) if i not in final]
    holder = {}
    for ingress, egress in current.items():
        if ingress in final:
            holder[ingress] = holder[egress] = ingress
    pending = {i: e for i, e in final.items() if current.get(i) != e}
    while pending:
        ready = [i for i, e in sorted(pending.items()) if holder.get(i, i) == i and holder.get(e, i) == i]
        if not ready:  # a cycle: break it at the smallest re-pointed ingress
            cycle = [i for i in pending if holder.get(i) == i]
            if not cycle:
                raise OpticalError('no order of changes reaches %s: a port would be in two pairs' % (final,))
            ingress = min(cycle)
            changes.append(Change('delete', ingress, None, current[ingress]))
            del holder[ingress], holder[current[ingress]]
            current = {i: e for i, e in current.items() if i != ingress}
            continue
        for ingress in ready:
            egress, previous = pending.pop(ingress), current.get(ingress)
            if previous is not None:
                del holder[previous]
            holder[ingress] = holder[egress] = ingress
            changes.append(Change('replace' if previous is not None else 'create', ingress, egress, previous))
    return changes


def check_ports(changes, ports, node):
    """Fail unless every port a create/re-point uses exists on the switch and is ENABLED."""
    if not ports:
        return
    for change in changes:
        if change.action == 'delete':
            continue
        for name, port in (('ingress', change.ingress), ('egress', change.egress)):
            pair = _pair_text(change.ingress, change.egress)
            if port not in ports:
                raise OpticalError('config pair %s: %s %d is not a port of switch %s (its ports are %s)'
                                   % (pair, name, port, node, _ranges(ports)))
            if ports[port] != 'ENABLED':
                raise OpticalError('config pair %s: %s %d of switch %s is %s: enable the port first'
                                   % (pair, name, port, node, ports[port]))


def _ranges(numbers):
    """[1, 2, 3, 5] -> '1-3, 5'."""
    spans = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ', '.join('%d' % a if a == b else '%d-%d' % (a, b) for a, b in spans)


def reconcile(client, wanted, state, check_mode=False):
    """Bring the switch to `state` applied to `wanted` ({ingress: egress}, see desired_pairs).

    Reads the pairs, plans the changes, checks their ports, and (unless check_mode) applies them,
    undoing them if one fails. Returns Outcome(before, after, commands); `after` is read back from
    the switch after a change, or predicted in check mode. E.g. re-point the Bob on port 9 to the
    Alice on port 2: reconcile(client, {2: 9}, 'replaced').
    """
    current = client.pairs()
    final = desired_pairs(wanted, current, state)
    changes = plan_changes(current, final)
    if changes:
        check_ports(changes, client.ports(), client.node_id or client.url)
    commands = [client.command(change) for change in changes]
    if not changes or check_mode:
        return Outcome(current, final, commands)
    try:
        client.apply(changes)
    except OpticalError as exc:
        exc.details['before'] = pairs_as_list(current)
        raise
    return Outcome(current, client.pairs(), commands)


def wait_for_light(client, egresses, threshold, timeout, interval=0.1):
    """Poll the power at each egress until all are >= threshold dBm; {egress: dBm}; OpticalError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        power = {port: client.power(port) for port in sorted(egresses)}
        dark = {port: dbm for port, dbm in power.items() if dbm < threshold}
        if not dark:
            return power
        if time.monotonic() >= deadline:
            raise OpticalError('no light at egress %s after %s s: %s below light_threshold %.2f dBm'
                               % (', '.join(str(p) for p in dark), timeout,
                                  ', '.join('port %d at %.2f dBm' % item for item in sorted(dark.items())),
                                  threshold), power=power)
        time.sleep(interval)
