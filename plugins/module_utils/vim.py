# -*- coding: utf-8 -*-
# Copyright: (c) 2026, qkd.nfv contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A VNF's image and server in a VIM: OpenStack (Glance and Nova through openstacksdk) or podman.

Plain Python, usable without Ansible. `ensure_present` and `ensure_absent` reconcile one VNF
against a back-end and return a result with before/after summaries; the back-ends
(`OpenStackVim`, `PodmanVim`) offer the same small set of operations on image and server
summaries (plain dicts).

The image is identified by name and the SHA-256 of its bytes, stored on the image (for Glance
the property openstacksdk itself uses, so images uploaded by other OpenStack tools match too):
a rerun with the same file uploads nothing. Everything the caller can get wrong (file, checksum,
cloud, flavor, network) is checked before anything is created.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import time

from ansible_collections.qkd.nfv.plugins.module_utils.errors import QkdNfvError

SHA256_PROPERTY = "owner_specified.openstack.sha256"
PODMAN_SHA256_LABEL = "qkd.nfv.sha256"
POLL_S = 0.5
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


class VimError(QkdNfvError):
    """A VIM refused or failed an operation, or the input cannot work; the message says which."""


# ---------------------------------------------------------------- image input and checksums

def parse_checksum(value):
    """'sha256:<hex>' or '<hex>' -> lower-case hex; None stays None."""
    if value is None:
        return None
    text = str(value).strip().lower()
    algo, sep, digest = text.partition(":")
    if sep and algo != "sha256":
        raise VimError("checksum: only sha256 is supported (got %s:...)" % algo)
    digest = digest if sep else text
    if not _HEX64.match(digest):
        raise VimError("checksum: expected 'sha256:' followed by 64 hex digits")
    return digest


def file_sha256(path):
    """(hex digest, size) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class HashingReader:
    """A file wrapper that hashes what is actually read, so an upload proves what it sent."""

    def __init__(self, handle, size):
        self._handle = handle
        self._size = size
        self.sha256 = hashlib.sha256()
        self.sent = 0

    def read(self, n=-1):
        chunk = self._handle.read(n)
        self.sha256.update(chunk)
        self.sent += len(chunk)
        return chunk

    def __len__(self):
        return self._size


class ImageSpec:
    """The image the caller wants: a local file (optional), a name, formats and its SHA-256.

    `verified`: the file's SHA-256 has been computed. A given checksum is checked against the file
    only when the file is needed (verify_file(), or while uploading it), so an image already in the
    VIM costs no pass over a file of many GB.
    """

    def __init__(self, name, sha256, path=None, size=None, disk_format="raw", container_format="bare",
                 verified=False):
        self.name = name
        self.sha256 = sha256
        self.path = path
        self.size = size
        self.disk_format = disk_format
        self.container_format = container_format
        self.verified = verified

    def verify_file(self):
        """Hash the file (once) and refuse it unless it has the expected SHA-256."""
        if self.verified:
            return
        actual, self.size = file_sha256(self.path)
        self.refuse_unless(actual, "nothing was uploaded")
        self.verified = True

    def refuse_unless(self, actual, outcome):
        if actual != self.sha256:
            raise VimError("checksum: %s has sha256 %s, not the expected %s; the file is not the image "
                           "you meant (or is damaged): %s" % (self.path, actual, self.sha256, outcome),
                           expected_sha256=self.sha256, actual_sha256=actual)


def image_spec(image, checksum, need_checksum=True):
    """Validate the `image` and `checksum` options into an ImageSpec.

    The file is read here only when no checksum is given (its SHA-256 then names the image).
    """
    image = dict(image or {})
    path = image.get("path")
    name = image.get("name") or (os.path.basename(path) if path else None)
    if not name:
        raise VimError("image: give image.path (a file on this host) or image.name (an image in the VIM)")
    expected = parse_checksum(checksum)
    size = None
    if path:
        if not os.path.isfile(path):
            raise VimError("image.path: %s is not a file on this host; copy the image there first "
                           "or fix the path" % path)
        if expected:
            size = os.path.getsize(path)
        else:
            expected, size = file_sha256(path)
    elif need_checksum and not expected:
        raise VimError("checksum: needed when image.path is not given, to identify the image by content")
    return ImageSpec(name, expected, path, size, image.get("disk_format") or "raw",
                     image.get("container_format") or "bare", verified=bool(path) and not checksum)


class Deadline:
    """One time budget for every wait of a run (the `timeout` option)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self):
        return max(0.0, self.end - time.monotonic())

    def sleep(self):
        time.sleep(min(POLL_S, self.remaining()))

    @property
    def expired(self):
        return self.remaining() <= 0


# ---------------------------------------------------------------- OpenStack

def _sdk():
    try:
        import openstack  # pylint: disable=import-outside-toplevel
        from keystoneauth1 import exceptions as ksa_exceptions  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise VimError("backend openstack needs the Python library openstacksdk on the host that runs "
                       "the module (pip install openstacksdk)")
    return openstack, ksa_exceptions


def _http_detail(exc):
    """The server's own message from an openstacksdk/keystoneauth error, without the URL noise."""
    details = getattr(exc, "details", None)
    message = getattr(exc, "message", None) or str(exc)
    if details and details not in message:
        message = "%s: %s" % (message, details)
    return html.unescape(message)  # Glance sends its messages HTML-escaped


class OpenStackVim:
    """Glance images and Nova servers through openstacksdk's proxy layer."""

    name = "openstack"

    def __init__(self, cloud=None, auth=None, auth_type=None, region_name=None, interface=None,
                 validate_certs=True, ca_cert=None, api_timeout=None):
        openstack, ksa_exceptions = _sdk()
        # Errors from the SDK and from keystoneauth underneath it (connection, auth).
        self.errors = (openstack.exceptions.SDKException, ksa_exceptions.ClientException)
        kwargs = {"verify": validate_certs}
        for key, value in (("auth", auth), ("auth_type", auth_type), ("region_name", region_name),
                           ("interface", interface), ("cacert", ca_cert), ("api_timeout", api_timeout)):
            if value:
                kwargs[key] = value
        try:
            self.conn = openstack.connect(cloud=cloud, **kwargs)
            self.project_id = self.conn.current_project_id
        except openstack.exceptions.ConfigException as exc:
            raise VimError("cloud: %s Name a cloud of clouds.yaml (searched: OS_CLIENT_CONFIG_FILE, "
                           "./clouds.yaml, ~/.config/openstack, /etc/openstack) or give auth" % exc)
        except Exception as exc:  # keystoneauth errors: unreachable, bad credentials
            raise VimError("cloud %s: cannot authenticate: %s" % (cloud or "(from auth)", _http_detail(exc)))

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except self.errors as exc:
            raise VimError("%s: %s" % (what, _http_detail(exc)))

    # images ----------------------------------------------------------------------------------
    @staticmethod
    def _image(img):
        props = dict(img.properties or {})
        return {"id": img.id, "name": img.name, "status": img.status, "size": img.size,
                "sha256": props.get(SHA256_PROPERTY) or img.get(SHA256_PROPERTY),
                "disk_format": img.disk_format, "container_format": img.container_format}

    def find_image(self, spec):
        """The oldest active image of that name whose stored SHA-256 matches, or None."""
        images = self._call("Glance: listing images", lambda: list(self.conn.image.images(name=spec.name)))
        found = [self._image(i) for i in sorted(images, key=lambda i: i.created_at or "")]
        matching = [i for i in found if i["sha256"] == spec.sha256 and i["status"] == "active"]
        return matching[0] if matching else None

    def upload_image(self, spec, deadline):
        """Create the image and stream the file into it, hashing what is sent; delete it on any failure.

        The image gets its SHA-256 property (what find_image() looks for) only once the bytes sent
        proved to have it, so no one finds, and boots, an image that turns out to be the wrong file.
        """
        with open(spec.path, "rb") as handle:
            reader = HashingReader(handle, spec.size)
            image = self._call(
                "Glance: uploading %s" % spec.name, self.conn.image.create_image, spec.name,
                data=reader, disk_format=spec.disk_format, container_format=spec.container_format,
                allow_duplicates=True, validate_checksum=False, size=spec.size)
        try:
            sent = reader.sha256.hexdigest()
            if not spec.verified:
                spec.refuse_unless(sent, "the upload was deleted")
            if sent != spec.sha256 or reader.sent != spec.size:
                raise VimError("image.path: %s changed while it was uploaded (sent sha256 %s, %d bytes); "
                               "the upload was deleted" % (spec.path, sent, reader.sent))
            self._call("Glance: labelling image %s" % image.id, self.conn.image.update_image, image.id,
                       **{SHA256_PROPERTY: sent})
            return self._wait_image(image.id, deadline)
        except BaseException:
            self.delete_image({"id": image.id})
            raise

    def _wait_image(self, image_id, deadline):
        # The upload returns before Glance may have finished (import paths): poll until active.
        while True:
            image = self._image(self._call("Glance: image %s" % image_id, self.conn.image.get_image, image_id))
            if image["status"] == "active":
                return image
            if image["status"] in ("killed", "deleted", "deactivated"):
                raise VimError("Glance: image %s ended in status %s" % (image_id, image["status"]))
            if deadline.expired:
                raise VimError("timeout: image %s still %s after %d s; the upload was deleted"
                               % (image_id, image["status"], deadline.seconds))
            deadline.sleep()

    def delete_image(self, image):
        self._call("Glance: deleting image %s" % image["id"], self.conn.image.delete_image,
                   image["id"], ignore_missing=True)

    # servers ---------------------------------------------------------------------------------
    @staticmethod
    def _server(srv):
        flavor = srv.flavor or {}
        image = srv.image or {}
        return {"id": srv.id, "name": srv.name, "status": srv.status,
                "image_id": image.get("id"), "flavor": flavor.get("original_name") or flavor.get("name"),
                "addresses": srv.addresses or {},
                "fault": (srv.fault or {}).get("message")}

    def find_flavor(self, flavor):
        found = self._call("Nova: flavors", self.conn.compute.find_flavor, flavor, ignore_missing=True)
        if found is None:
            names = sorted(f.name for f in self._call("Nova: flavors", lambda: list(self.conn.compute.flavors())))
            raise VimError("flavor: %s does not exist in the VIM; available: %s" % (flavor, ", ".join(names)))
        return found.name

    def find_network(self, network):
        found = self._call("Neutron: networks", self.conn.network.find_network, network, ignore_missing=True)
        if found is None:
            raise VimError("network: %s does not exist in the VIM (or is not visible to this project)" % network)
        return found.id

    def find_server(self, name):
        servers = self._call("Nova: listing servers", lambda: list(
            self.conn.compute.servers(name="^%s$" % re.escape(name))))
        servers = [s for s in servers if s.name == name]
        if len(servers) > 1:
            raise VimError("name: %d servers are named %s; rename or delete the extra ones"
                           % (len(servers), name))
        return self._server(servers[0]) if servers else None

    def get_server(self, server_id):
        srv = self._call("Nova: server %s" % server_id, self.conn.compute.find_server, server_id,
                         ignore_missing=True)
        return self._server(srv) if srv is not None else None

    def create_server(self, name, image, flavor, network, command=None):
        networks = [{"uuid": network}] if network else "none"
        flavor_id = self._call("Nova: flavor", self.conn.compute.find_flavor, flavor, ignore_missing=False).id
        srv = self._call("Nova: creating server %s" % name, self.conn.compute.create_server, name=name,
                         image_id=image["id"], flavor_id=flavor_id, networks=networks)
        return {"id": srv.id, "name": name, "status": "BUILD", "image_id": image["id"], "flavor": flavor,
                "addresses": {}, "fault": None}

    def replace_image(self, server, image, flavor, network, command=None):
        """Rebuild the server from another image (same id, addresses and flavor)."""
        self._call("Nova: rebuilding server %s" % server["name"], self.conn.compute.rebuild_server,
                   server["id"], image=image["id"])
        return server

    def start_server(self, server):
        self._call("Nova: starting server %s" % server["name"], self.conn.compute.start_server, server["id"])

    def wait_server(self, server, deadline, want="ACTIVE"):
        while True:
            current = self.get_server(server["id"])
            if current is None:
                raise VimError("Nova: server %s disappeared while starting" % server["name"])
            if current["status"] == want:
                return current
            if current["status"] == "ERROR":
                raise VimError("Nova: server %s failed: %s" % (server["name"], current["fault"] or "status ERROR"),
                               server=current)
            if deadline.expired:
                raise VimError("timeout: server %s still %s after %d s" % (server["name"], current["status"],
                                                                           deadline.seconds), server=current)
            deadline.sleep()

    def delete_server(self, server, deadline=None):
        self._call("Nova: deleting server %s" % server["name"], self.conn.compute.delete_server,
                   server["id"], ignore_missing=True)
        while deadline is not None and self.get_server(server["id"]) is not None:
            if deadline.expired:
                raise VimError("timeout: server %s still being deleted after %d s"
                               % (server["name"], deadline.seconds))
            deadline.sleep()

    active_status = "ACTIVE"
    stopped_status = ("SHUTOFF",)


# ---------------------------------------------------------------- podman

class PodmanVim:
    """Container VNFs with podman: images imported from a rootfs tarball, no registry."""

    name = "podman"
    active_status = "running"
    stopped_status = ("exited", "stopped", "created")

    def __init__(self, containers_conf=None, executable=None):
        self.podman = executable or shutil.which("podman")
        if not self.podman:
            raise VimError("backend podman: the podman command is not installed on this host")
        self.env = dict(os.environ)
        if containers_conf:
            if not os.path.isfile(containers_conf):
                raise VimError("containers_conf: %s is not a file" % containers_conf)
            self.env["CONTAINERS_CONF"] = containers_conf

    def _run(self, what, *args, ok_codes=(0,)):
        proc = subprocess.run([self.podman] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.env, check=False)
        if proc.returncode not in ok_codes:
            raise VimError("podman: %s: %s" % (what, proc.stderr.decode(errors="replace").strip()
                                               or "exit code %d" % proc.returncode))
        return proc.returncode, proc.stdout.decode(errors="replace")

    def _inspect(self, kind, ref):
        code, out = self._run("inspecting %s %s" % (kind, ref), kind, "inspect", ref, ok_codes=(0, 1, 125))
        if code != 0:
            return None
        data = json.loads(out or "[]")
        return data[0] if data else None

    @staticmethod
    def _tag(spec):
        return "localhost/%s:%s" % (re.sub(r"[^a-z0-9._-]", "-", spec.name.lower()), spec.sha256[:12])

    def find_image(self, spec):
        img = self._inspect("image", self._tag(spec))
        labels = (img or {}).get("Labels") or (img or {}).get("Config", {}).get("Labels") or {}
        if img is None or labels.get(PODMAN_SHA256_LABEL) != spec.sha256:
            return None
        return {"id": img["Id"], "name": self._tag(spec), "status": "active", "size": img.get("Size"),
                "sha256": spec.sha256, "disk_format": "rootfs-tar", "container_format": "oci"}

    def upload_image(self, spec, deadline):
        spec.verify_file()  # the label names the image by its SHA-256: check the file first
        self._run("importing %s" % spec.path, "import", "--change",
                  "LABEL=%s=%s" % (PODMAN_SHA256_LABEL, spec.sha256), spec.path, self._tag(spec))
        image = self.find_image(spec)
        if image is None:
            raise VimError("podman: imported %s but cannot find it as %s" % (spec.path, self._tag(spec)))
        return image

    def delete_image(self, image):
        self._run("removing image %s" % image["name"], "rmi", "--force", image["id"], ok_codes=(0, 1))

    def find_flavor(self, flavor):
        return flavor  # containers have no flavors; the option is documented as ignored

    def find_network(self, network):
        if network not in ("none", "host"):
            raise VimError("network: with backend podman use none or host (got %s)" % network)
        return network

    def _server(self, ctr):
        state = ctr.get("State") or {}
        network = (ctr.get("HostConfig") or {}).get("NetworkMode")
        return {"id": ctr["Id"], "name": ctr["Name"].lstrip("/"), "status": state.get("Status"),
                "image_id": ctr.get("Image"), "flavor": None,
                "addresses": {"host": [{"addr": "127.0.0.1"}]} if network == "host" else {},
                "fault": state.get("Error") or None}

    def find_server(self, name):
        ctr = self._inspect("container", name)
        return self._server(ctr) if ctr else None

    def get_server(self, server_id):
        return self.find_server(server_id)

    def create_server(self, name, image, flavor, network, command=None):
        if not command:
            raise VimError("command: backend podman needs the command the container runs")
        self._run("running %s" % name, "run", "--detach", "--name", name, "--network", network or "none",
                  image["id"], *command)
        return self.find_server(name)

    def replace_image(self, server, image, flavor, network, command=None):
        """Containers are replaced, not rebuilt: remove it and run a new one from the image."""
        self.delete_server(server)
        return self.create_server(server["name"], image, flavor, network, command)

    def start_server(self, server):
        self._run("starting %s" % server["name"], "start", server["id"])

    def wait_server(self, server, deadline, want="running"):
        while True:
            current = self.get_server(server["id"])
            if current is None:
                raise VimError("podman: container %s disappeared" % server["name"])
            if current["status"] == want:
                return current
            if current["status"] in ("exited", "stopped"):
                raise VimError("podman: container %s exited: %s" % (server["name"], current["fault"]
                                                                    or "see podman logs %s" % server["name"]),
                               server=current)
            if deadline.expired:
                raise VimError("timeout: container %s still %s after %d s"
                               % (server["name"], current["status"], deadline.seconds), server=current)
            deadline.sleep()

    def delete_server(self, server, deadline=None):
        self._run("removing %s" % server["name"], "rm", "--force", "--time", "5", server["id"], ok_codes=(0, 1))


# ---------------------------------------------------------------- reconciliation

def _planned_image(spec):
    return {"id": None, "name": spec.name, "status": "active", "size": spec.size, "sha256": spec.sha256,
            "disk_format": spec.disk_format, "container_format": spec.container_format}


def _summary(image, server):
    return {"image": dict(image) if image else None,
            "server": {k: v for k, v in server.items() if k != "fault"} if server else None}


def ensure_present(vim, spec, name, flavor, network=None, wait=True, timeout=600, check_mode=False,
                   command=None):
    """The image (by SHA-256) in the VIM and the server `name` running it. Returns the result dict."""
    deadline = Deadline(timeout)
    flavor_name = vim.find_flavor(flavor)
    network_id = vim.find_network(network) if network else None
    image = vim.find_image(spec)
    server = vim.find_server(name)
    before = _summary(image, server)
    actions = []
    if image is None:
        if not spec.path:
            raise VimError("image: no image %s with sha256 %s in the VIM, and no image.path to upload it from"
                           % (spec.name, spec.sha256))
        actions.append("upload image")
        if check_mode:
            spec.verify_file()  # what the real run would refuse
            image = _planned_image(spec)
        else:
            image = vim.upload_image(spec, deadline)
    try:
        server, created = _ensure_server(vim, actions, image, server, name, flavor_name, network_id,
                                         command, check_mode)
        after_server = _settle(vim, server, name, image, flavor_name, created, wait, deadline, check_mode)
    except VimError as exc:
        if "upload image" in actions and not check_mode:  # the upload stands; say so
            exc.details.update(changed=True, image_id=image["id"])
        raise
    return _result(bool(actions), actions, before, _summary(image, after_server), image, after_server)


def _ensure_server(vim, actions, image, server, name, flavor_name, network_id, command, check_mode):
    if server is not None and server["status"] == "ERROR":
        raise VimError("name: server %s exists in status ERROR (%s); remove it with state=absent first"
                       % (name, server["fault"] or "no fault recorded"), server=server)
    if server is not None and flavor_name and server["flavor"] and server["flavor"] != flavor_name:
        raise VimError("flavor: server %s runs flavor %s, not %s; resizing is not automated: remove it "
                       "with state=absent, then create it again" % (name, server["flavor"], flavor_name))
    created = False
    if server is None:
        actions.append("create server")
        if not check_mode:
            server = vim.create_server(name, image, flavor_name, network_id, command)
            created = True
    elif server["image_id"] != image["id"]:
        actions.append("replace server image")
        if not check_mode:
            server = vim.replace_image(server, image, flavor_name, network_id, command)
    elif server["status"] in vim.stopped_status:
        actions.append("start server")
        if not check_mode:
            vim.start_server(server)
    return server, created


def _settle(vim, server, name, image, flavor_name, created, wait, deadline, check_mode):
    """The server after the run: planned (check mode), waited for, or as it is now."""
    if check_mode:
        return dict(server or {"id": None, "name": name, "addresses": {}, "fault": None},
                    status=vim.active_status, image_id=image["id"], flavor=flavor_name)
    if not wait:
        return vim.get_server(server["id"]) or server
    try:
        return vim.wait_server(server, deadline, vim.active_status)
    except VimError:
        if created:  # a server this run made and that cannot run is not left behind
            vim.delete_server(server, Deadline(60))
        raise


def ensure_absent(vim, name, spec=None, purge_image=False, wait=True, timeout=600, check_mode=False):
    """No server `name` (and, with purge_image, no image matching spec). Returns the result dict."""
    deadline = Deadline(timeout)
    server = vim.find_server(name)
    image = vim.find_image(spec) if purge_image and spec else None
    before = _summary(image, server)
    actions = []
    if server is not None:
        actions.append("delete server")
        if not check_mode:
            vim.delete_server(server, deadline if wait else None)
    if image is not None:
        actions.append("delete image")
        if not check_mode:
            vim.delete_image(image)
    return _result(bool(actions), actions, before, _summary(None, None), None, None)


def _result(changed, actions, before, after, image, server):
    return {
        "changed": changed,
        "actions": actions,
        "image_id": image["id"] if image else None,
        "server_id": server["id"] if server else None,
        "status": server["status"] if server else None,
        "addresses": server["addresses"] if server else {},
        "image": image,
        "server": after["server"],
        "diff": {"before": before, "after": after},
    }
