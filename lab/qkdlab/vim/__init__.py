"""The lab's VIM: real OpenStack (Keystone, Glance, Placement, Nova with the fake virt driver)
from PyPI in a virtualenv of its own, a private RabbitMQ node, a minimal Neutron stand-in, and
podman for container VNFs where installed. Everything listens on 127.0.0.1 and runs without an
init system; `stop` ends exactly the processes `start` recorded.

    install(lab_dir)           idempotent; slow only the first time
    start(lab_dir, ports=None) -> {service: pid}, once every API answers and compute is up
    stop(lab_dir)              also from a fresh process (PID files under lab_dir/vim/pids)
    status(lab_dir)            -> {services, pids, alive, urls, clouds_yaml, ...}

The databases are in a private MariaDB server (Debian's mariadb-server-core). The data centres
node2..node5 share the one OpenStack; each has a project and a user of its own
(its clouds.yaml entry is named after the node), so each DC's images are private to it.
"""

import json
import shutil
from pathlib import Path

from . import configs, installer, processes, services
from .layout import DATACENTRES, DEFAULT_PORTS, Layout, default_lab_dir, write_file

__all__ = ["DEFAULT_PORTS", "DATACENTRES", "install", "start", "stop", "status", "default_lab_dir"]

PROCESSES = ("mariadb", "epmd", "rabbitmq", "keystone", "glance", "placement", "nova", "neutron",
             "nova-conductor", "nova-scheduler", "nova-compute")


def install(lab_dir, ports=None):
    """Create the VIM's virtualenv and databases under lab_dir (a no-op when already done).

    The databases belong to the one-time work: their schema set-up takes a minute or more on a
    busy machine, which `start` then does not pay.
    """
    installer.install(lab_dir)
    layout = Layout(Path(lab_dir))
    if services.initialised(layout) or processes.recorded(layout):
        return  # done, or a running VIM that initialises itself
    ports = _ports(ports)
    _check_ports_free(ports, ["mariadb"])
    configs.write_all(layout, ports)
    try:
        services.start_mariadb(layout, ports)
        processes.wait_until(lambda: processes.port_open("127.0.0.1", ports["mariadb"]), 120,
                             "mariadb", layout, ["mariadb"])
        services.initialise(layout, ports)
    finally:
        _stop(layout)


def _check_ports_free(ports, names):
    busy = [name for name in names if processes.port_open("127.0.0.1", ports[name])]
    if busy:
        raise RuntimeError("ports already in use: %s" % ", ".join(
            "%s %d" % (name, ports[name]) for name in busy))


def _stop(layout):
    processes.stop_all(layout, first=services.RPC_SERVICES, last=services.INFRA_SERVICES)


def _ports(ports):
    merged = dict(DEFAULT_PORTS)
    merged.update(ports or {})
    return merged


def start(lab_dir, ports=None):
    """Start the VIM; return {service: pid} of every process started, once all APIs answer.

    Already running: returns the running processes' PIDs (started earlier, by any process).
    On a failure it stops whatever it started and raises RuntimeError naming the log to read.
    """
    layout = Layout(Path(lab_dir))
    running = processes.recorded(layout)
    if running and set(running) >= set(PROCESSES):
        return running
    if running:  # a half-running VIM (a crash): restart cleanly
        _stop(layout)
    if not installer.installed(lab_dir):
        raise RuntimeError("the VIM is not installed in %s: run install first" % lab_dir)
    ports = _ports(ports)
    _check_ports_free(ports, list(ports))
    configs.write_all(layout, ports)
    write_file(layout.root / "ports.json", json.dumps(ports, indent=1, sort_keys=True))
    try:
        return services.start_all(layout, ports)
    except BaseException:
        _stop(layout)
        raise


def stop(lab_dir):
    """Stop every process start() recorded (SIGTERM, then SIGKILL after 20 s)."""
    _stop(Layout(Path(lab_dir)))


def status(lab_dir):
    layout = Layout(Path(lab_dir))
    ports_file = layout.root / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else dict(DEFAULT_PORTS)
    pids = processes.recorded(layout)
    return {
        "installed": installer.installed(lab_dir),
        "alive": bool(pids) and set(pids) >= set(PROCESSES),
        "services": {name: {"pid": pids.get(name), "alive": name in pids,
                            "log": str(layout.log(name))} for name in PROCESSES},
        "pids": pids,
        "ports": ports,
        "urls": {name: configs.url(ports, name) for name in services.API_SERVICES},
        "clouds_yaml": str(layout.clouds_yaml),
        "clouds": list(DATACENTRES),
        "containers_conf": str(layout.containers_conf),
        "podman": bool(shutil.which("podman")),
        "missing_debian_packages": installer.missing_system_packages(optional=True),
    }
