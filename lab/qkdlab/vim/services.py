"""The VIM's processes: how each is launched, the one-time database set-up, and the start order.

The databases live in a private MariaDB server: Nova's API, conductor and scheduler write the
same tables at once, which SQLite answers with "database is locked" and failed builds.
Order matters where a service caches a failure for long: nova-compute registers its resource
provider at start-up and otherwise retries only every minute, so it starts once Keystone,
Placement and the catalog are ready. Everything else starts at once and waits for its peers.
"""

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import configs, processes, seed
from .layout import HOST

RABBIT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
EPMD_CANDIDATES = ("/usr/bin/epmd", "/usr/lib/erlang/bin/epmd")
RPC_SERVICES = ("nova-compute", "nova-conductor", "nova-scheduler")
INFRA_SERVICES = ("mariadb", "rabbitmq", "epmd")  # stopped last
API_SERVICES = ("keystone", "glance", "placement", "nova", "neutron")
WSGI = {  # service -> (module file under site-packages, config-dir variable, processes, threads)
    "keystone": ("keystone/wsgi/api.py", "OS_KEYSTONE_CONFIG_DIR", 1, 2),
    # Two processes: uploads to several DCs at once hash and write on both cores.
    "glance": ("glance/wsgi/api.py", "OS_GLANCE_CONFIG_DIR", 2, 4),
    "placement": ("placement/wsgi/api.py", "OS_PLACEMENT_CONFIG_DIR", 1, 2),
    "nova": ("nova/wsgi/osapi_compute.py", "OS_NOVA_CONFIG_DIR", 1, 2),
}


def _uwsgi(layout, ports, service):
    module, conf_var, processes, threads = WSGI[service]
    conf_dir = layout.etc(service)
    argv = [layout.bin("uwsgi"), "--http-socket", "%s:%d" % (HOST, ports[service]),
            "--wsgi-file", layout.site_packages / module, "--virtualenv", layout.venv,
            "--processes", str(processes), "--threads", str(threads), "--master", "--die-on-term",
            "--enable-threads", "--lazy-apps", "--need-app", "--http-chunked-input",
            "--buffer-size", "65535", "--add-header", "Connection: close",
            "--disable-logging"]
    env = {conf_var: str(conf_dir)}
    if service == "keystone":
        env["OS_KEYSTONE_CONFIG_FILES"] = "keystone.conf"
    return argv, env


def _manage(layout, *argv, done_if=None):
    """Run a *-manage command of the venv; raise with its output when it fails.

    done_if: text in the output that means an earlier, interrupted set-up already did the step.
    """
    proc = subprocess.run([str(layout.bin(argv[0]))] + [str(a) for a in argv[1:]],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0 and not (done_if and done_if.encode() in proc.stdout):
        raise RuntimeError("%s failed (%d): %s" % (
            " ".join(map(str, argv[:3])), proc.returncode, proc.stdout.decode(errors="replace")[-2000:]))


def _init_keystone(layout, ports, admin_password):
    conf = ("--config-file", layout.etc("keystone") / "keystone.conf")
    _manage(layout, "keystone-manage", *conf, "db_sync")
    for step, repo in (("fernet_setup", "fernet-keys"), ("receipt_setup", "fernet-receipts"),
                       ("credential_setup", "credential-keys")):
        (layout.data("keystone") / repo).mkdir(parents=True, exist_ok=True, mode=0o700)
        _manage(layout, "keystone-manage", *conf, step, "--keystone-user", "root",
                "--keystone-group", "root")
    identity = configs.url(ports, "keystone")
    _manage(layout, "keystone-manage", *conf, "bootstrap", "--bootstrap-password", admin_password,
            "--bootstrap-region-id", "RegionOne", "--bootstrap-admin-url", identity,
            "--bootstrap-internal-url", identity, "--bootstrap-public-url", identity)


def _init_nova(layout):
    conf = ("--config-file", layout.etc("nova") / "nova.conf")
    _manage(layout, "nova-manage", *conf, "api_db", "sync")
    # Templated URLs: the cells follow nova.conf's [database] and [DEFAULT] transport_url when
    # a port or the password changes.
    db = "{scheme}://{username}:{password}@{hostname}:{port}/%s?{query}"
    _manage(layout, "nova-manage", *conf, "cell_v2", "map_cell0", "--database_connection", db % "nova_cell0")
    _manage(layout, "nova-manage", *conf, "cell_v2", "create_cell", "--name", "cell1",
            "--transport-url", "rabbit://{username}:{password}@{hostname}:{port}/",
            "--database_connection", db % "nova", done_if="already exists")
    _manage(layout, "nova-manage", *conf, "db", "sync")


def _marker(layout):
    return layout.root / "data" / ".initialised"


def initialised(layout):
    return _marker(layout).exists()


def initialise(layout, ports):
    """Create the databases, fernet keys and the Keystone admin once per lab directory."""
    marker = _marker(layout)
    if marker.exists():
        return False
    admin_password = layout.secrets()["admin"]
    steps = [
        lambda: _init_keystone(layout, ports, admin_password),
        lambda: _manage(layout, "glance-manage", "--config-file",
                        layout.etc("glance") / "glance-api.conf", "db_sync"),
        lambda: _manage(layout, "placement-manage", "--config-file",
                        layout.etc("placement") / "placement.conf", "db", "sync"),
        lambda: _init_nova(layout),
    ]
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        for future in [pool.submit(step) for step in steps]:
            future.result()
    marker.write_text("ok\n")
    return True


def _epmd():
    for path in EPMD_CANDIDATES:
        if Path(path).exists():
            return path
    raise RuntimeError("epmd not found: install the Debian package rabbitmq-server")


def _start_rabbit(layout, ports):
    data = layout.data("rabbitmq")
    data.mkdir(parents=True, exist_ok=True)
    env = {
        "ERL_EPMD_PORT": str(ports["epmd"]), "HOME": str(data),
        "RABBITMQ_NODENAME": "qkdlab-vim-%d@localhost" % ports["rabbit"],
        "RABBITMQ_NODE_IP_ADDRESS": HOST, "RABBITMQ_NODE_PORT": str(ports["rabbit"]),
        "RABBITMQ_DIST_PORT": str(ports["rabbit_dist"]),
        "RABBITMQ_MNESIA_BASE": str(data / "mnesia"), "RABBITMQ_LOG_BASE": str(data / "log"),
        "RABBITMQ_LOGS": "-", "RABBITMQ_CONFIG_FILE": str(layout.etc("rabbitmq") / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(data / "rabbitmq.pid"),
    }
    epmd = [_epmd(), "-address", HOST, "-port", ports["epmd"]]
    pids = {"epmd": processes.spawn(layout, "epmd", epmd, env=env)}
    pids["rabbitmq"] = processes.spawn(layout, "rabbitmq", [RABBIT_SERVER], env=env, cwd=data)
    return pids


def _start_nova_service(layout, binary):
    return processes.spawn(layout, binary, [layout.bin(binary), "--config-file",
                                            layout.etc("nova") / "nova.conf"])


def start_all(layout, ports, timeout_s=240.0):
    """Start every process; return {service: pid} once every API answers and compute is up."""
    pids = {"mariadb": start_mariadb(layout, ports)}
    processes.wait_until(lambda: processes.port_open(HOST, ports["mariadb"]), timeout_s, "mariadb",
                         layout, ["mariadb"])
    initialise(layout, ports)
    pids.update(_start_rabbit(layout, ports))
    for service in WSGI:
        argv, env = _uwsgi(layout, ports, service)
        pids[service] = processes.spawn(layout, service, argv, env=env)
    lab_root = Path(__file__).resolve().parents[2]
    layout.data("neutron").mkdir(parents=True, exist_ok=True)
    pids["neutron"] = processes.spawn(
        layout, "neutron", [sys.executable, "-m", "qkdlab.vim.neutron", "--port", ports["neutron"],
                            "--state", layout.data("neutron") / "state.json"],
        env={"PYTHONPATH": str(lab_root)}, cwd=lab_root)

    def wait(predicate, what, services):
        processes.wait_until(predicate, timeout_s, what, layout, services)

    wait(lambda: processes.http_answers(configs.url(ports, "keystone")), "keystone", ["keystone"])
    passwords = layout.secrets()
    token = seed.identity(ports, passwords)
    wait(lambda: processes.port_open(HOST, ports["rabbit"]), "rabbitmq", ["rabbitmq", "epmd"])
    for binary in ("nova-conductor", "nova-scheduler"):
        pids[binary] = _start_nova_service(layout, binary)
    wait(lambda: processes.http_answers(configs.url(ports, "placement")), "placement", ["placement"])
    pids["nova-compute"] = _start_nova_service(layout, "nova-compute")
    for service in ("glance", "nova", "neutron"):
        wait(lambda s=service: processes.http_answers(configs.url(ports, s)), service, [service])
    seed.flavors(ports, token)
    wait(lambda: seed.compute_up(ports, token), "nova-compute", list(RPC_SERVICES))
    # Map the compute host to its cell now rather than at the scheduler's next periodic discovery.
    _manage(layout, "nova-manage", "--config-file", layout.etc("nova") / "nova.conf",
            "cell_v2", "discover_hosts")
    return pids


def start_mariadb(layout, ports):
    """Create the data directory once, then start a private MariaDB server on 127.0.0.1."""
    data = layout.data("mariadb")
    for path in (MARIADBD, MARIADB_INSTALL_DB):
        if not Path(path).exists():
            raise RuntimeError("%s not found: apt-get install mariadb-server-core" % path)
    if not (data / "mysql").is_dir():
        proc = subprocess.run([MARIADB_INSTALL_DB, "--no-defaults", "--user=root", "--datadir=%s" % data,
                               "--auth-root-authentication-method=socket", "--skip-test-db"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            raise RuntimeError("mariadb-install-db failed (%d): %s" % (
                proc.returncode, proc.stdout.decode(errors="replace")[-1500:]))
    socket_path = data / "mysqld.sock"
    if len(str(socket_path)) > 100:  # the limit of a Unix socket path
        socket_path = Path(tempfile.gettempdir()) / ("qkdlab-vim-mariadb-%d.sock" % ports["mariadb"])
    return processes.spawn(layout, "mariadb", [
        MARIADBD, "--no-defaults", "--user=root", "--datadir=%s" % data,
        "--bind-address=%s" % HOST, "--port=%d" % ports["mariadb"], "--socket=%s" % socket_path,
        "--pid-file=%s" % (data / "mariadbd.pid"), "--skip-name-resolve", "--skip-log-bin",
        "--init-file=%s" % (layout.etc("mariadb") / "init.sql"),
        "--character-set-server=utf8mb4", "--max-connections=500",
        # A test-bed: small caches, and commits flushed once a second rather than per commit.
        "--innodb-buffer-pool-size=128M", "--innodb-flush-log-at-trx-commit=2",
        "--innodb-doublewrite=0", "--innodb-log-file-size=16M"])
