"""Where the VIM keeps its files under a lab directory, its default ports and its lab secrets.

    <lab_dir>/vim/venv          the OpenStack services' own virtualenv (apart from the collection's)
    <lab_dir>/vim/etc/<svc>/    generated configuration
    <lab_dir>/vim/data/<svc>/   MariaDB, the Glance file store, fernet keys, RabbitMQ
    <lab_dir>/vim/log/<svc>.log one log per process
    <lab_dir>/vim/pids/<svc>.pid "pid start-time" of every process start() launched
    <lab_dir>/vim/clouds.yaml   one entry per data centre (0600: it holds passwords)
"""

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORTS = {
    "keystone": 18500,
    "glance": 18501,
    "placement": 18502,
    "nova": 18503,
    "rabbit": 18504,
    "neutron": 18505,
    "rabbit_dist": 18506,
    "epmd": 18507,
    "mariadb": 18508,
}
HOST = "127.0.0.1"
REGION = "RegionOne"
# The data centres of inventory/lab: each gets a project and a user of its own, so the images a
# DC uploads are private to it, while all share the one compute host.
DATACENTRES = ("node2", "node3", "node4", "node5")
SERVICE_USERS = ("glance", "nova", "placement", "neutron")


def default_lab_dir():
    env = os.environ.get("QKDLAB_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".lab"


@dataclass(frozen=True)
class Layout:
    lab_dir: Path

    @property
    def root(self):
        return Path(self.lab_dir).resolve() / "vim"

    @property
    def venv(self):
        return self.root / "venv"

    def bin(self, name):
        return self.venv / "bin" / name

    @property
    def site_packages(self):
        return self.venv / "lib" / "python3.11" / "site-packages"

    def etc(self, service):
        return self.root / "etc" / service

    def data(self, service):
        return self.root / "data" / service

    def log(self, service):
        return self.root / "log" / ("%s.log" % service)

    def pid_file(self, service):
        return self.root / "pids" / ("%s.pid" % service)

    @property
    def pids_dir(self):
        return self.root / "pids"

    @property
    def clouds_yaml(self):
        return self.root / "clouds.yaml"

    @property
    def containers_conf(self):
        return self.root / "containers.conf"

    @property
    def installed_marker(self):
        return self.venv / ".qkdlab-installed"

    def secrets(self):
        """The lab's passwords (admin, service users, DC users), made once and kept 0600."""
        path = self.root / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        names = ("admin", "database") + SERVICE_USERS + DATACENTRES
        values = {name: secrets.token_urlsafe(18) for name in names}
        self.root.mkdir(parents=True, exist_ok=True)
        _write_private(path, json.dumps(values, indent=1))
        return values


def _write_private(path, text):
    """Write text to path atomically with mode 0600."""
    tmp = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_file(path, text, private=False):
    """Write a generated file atomically (0600 when it holds secrets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        _write_private(path, text)
        return
    tmp = path.with_name(".%s.%d.tmp" % (path.name, os.getpid()))
    tmp.write_text(text)
    os.replace(tmp, path)
