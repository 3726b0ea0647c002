"""Configuration writers: keystone.conf, glance-api.conf, placement.conf, nova.conf, RabbitMQ,
containers.conf and the data centres' clouds.yaml. Paths are absolute (oslo.config would read a
`$name` as a reference to another option); files holding passwords are 0600.
"""

import shutil

import yaml

from .layout import DATACENTRES, HOST, REGION, write_file


def url(ports, service):
    suffix = {"keystone": "/v3", "nova": "/v2.1"}.get(service, "")
    return "http://%s:%d%s" % (HOST, ports[service], suffix)


def _ini(sections):
    lines = []
    for section, options in sections.items():
        lines.append("[%s]" % section)
        lines += ["%s = %s" % (key, value) for key, value in options.items()]
        lines.append("")
    return "\n".join(lines)


DATABASES = ("keystone", "glance", "placement", "nova_api", "nova", "nova_cell0")


def db_url(ports, password, database):
    return "mysql+pymysql://openstack:%s@%s:%d/%s?charset=utf8" % (password, HOST, ports["mariadb"], database)


def _authtoken(ports, user, password):
    """keystonemiddleware and keystoneauth options for a service user in project `service`."""
    return {
        "www_authenticate_uri": url(ports, "keystone"), "auth_url": url(ports, "keystone"),
        "auth_type": "password", "username": user, "password": password,
        "project_name": "service", "user_domain_name": "Default",
        "project_domain_name": "Default", "region_name": REGION,
    }


def write_all(layout, ports):
    """Write every service's configuration for these ports."""
    pw = layout.secrets()
    for service in ("keystone", "glance", "placement", "nova", "neutron", "rabbitmq", "mariadb"):
        layout.data(service).mkdir(parents=True, exist_ok=True)
    mariadb(layout, pw["database"])
    keystone(layout, ports, pw["database"])
    glance(layout, ports, pw)
    placement(layout, ports, pw)
    nova(layout, ports, pw)
    rabbitmq(layout, ports)
    clouds_yaml(layout, ports, pw)
    containers_conf(layout)


def mariadb(layout, password):
    """The SQL the database server runs at each start: databases and the services' user (idempotent)."""
    lines = ["CREATE DATABASE IF NOT EXISTS %s CHARACTER SET utf8mb4;" % db for db in DATABASES]
    lines += ["CREATE USER IF NOT EXISTS 'openstack'@'%s' IDENTIFIED BY '%s';" % (HOST, password),
              "ALTER USER 'openstack'@'%s' IDENTIFIED BY '%s';" % (HOST, password)]
    lines += ["GRANT ALL PRIVILEGES ON %s.* TO 'openstack'@'%s';" % (db, HOST) for db in DATABASES]
    write_file(layout.etc("mariadb") / "init.sql", "\n".join(lines) + "\n", private=True)


def keystone(layout, ports, db_password):
    data = layout.data("keystone")
    text = _ini({
        "DEFAULT": {"log_file": "", "use_stderr": "true"},
        "database": {"connection": db_url(ports, db_password, "keystone")},
        "token": {"provider": "fernet", "expiration": 14400},
        # bcrypt's cheapest cost: every task authenticates anew, and at the default cost each
        # login burns most of a second of CPU on a two-core test machine.
        "identity": {"password_hash_rounds": 4},
        "fernet_tokens": {"key_repository": data / "fernet-keys"},
        "fernet_receipts": {"key_repository": data / "fernet-receipts"},
        "credential": {"key_repository": data / "credential-keys"},
        "oslo_policy": {"enforce_new_defaults": "true", "enforce_scope": "true"},
    })
    write_file(layout.etc("keystone") / "keystone.conf", text, private=True)


def glance(layout, ports, pw):
    etc, data = layout.etc("glance"), layout.data("glance")
    for sub in ("images", "staging", "tasks"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    paste = etc / "glance-api-paste.ini"
    paste.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(layout.venv / "etc" / "glance" / "glance-api-paste.ini", paste)
    text = _ini({
        "DEFAULT": {"enabled_backends": "fs:file", "bind_host": HOST, "bind_port": ports["glance"],
                    "worker_self_reference_url": url(ports, "glance"),
                    "image_size_cap": 64 * 2 ** 30,
                    # The multihash of every upload: SHA-256, the hash the collection names images by
                    # (Glance's default, SHA-512, costs twice the CPU on this kind of host).
                    "hashing_algorithm": "sha256"},
        "database": {"connection": db_url(ports, pw["database"], "glance")},
        "glance_store": {"default_backend": "fs"},
        # 1 MiB pieces instead of 64 KiB: a 1 GiB upload is read, hashed and written in 16 times fewer steps.
        "fs": {"filesystem_store_datadir": "%s/images/" % data, "filesystem_store_chunk_size": 1 << 20},
        "os_glance_staging_store": {"filesystem_store_datadir": "%s/staging/" % data},
        "os_glance_tasks_store": {"filesystem_store_datadir": "%s/tasks/" % data},
        "paste_deploy": {"flavor": "keystone", "config_file": paste},
        "keystone_authtoken": _authtoken(ports, "glance", pw["glance"]),
    })
    write_file(etc / "glance-api.conf", text, private=True)


def placement(layout, ports, pw):
    text = _ini({
        "DEFAULT": {"use_stderr": "true"},
        "api": {"auth_strategy": "keystone"},
        "placement_database": {"connection": db_url(ports, pw["database"], "placement")},
        "keystone_authtoken": _authtoken(ports, "placement", pw["placement"]),
    })
    write_file(layout.etc("placement") / "placement.conf", text, private=True)


def nova(layout, ports, pw):
    data = layout.data("nova")
    for sub in ("instances", "lock"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    # The WSGI app reads nova.conf and api-paste.ini from its config directory.
    layout.etc("nova").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(layout.venv / "etc" / "nova" / "api-paste.ini", layout.etc("nova") / "api-paste.ini")
    service = _authtoken(ports, "nova", pw["nova"])
    client = {k: v for k, v in service.items() if k != "www_authenticate_uri"}
    text = _ini({
        "DEFAULT": {
            "transport_url": "rabbit://guest:guest@%s:%d/" % (HOST, ports["rabbit"]),
            # Nova's fake driver "boots" servers at once, no hypervisor needed. This variant keeps
            # its node UUID across restarts (the others make a new one per process, and a
            # restarted nova-compute then refuses to start). Reservations leave a host of
            # 10 vCPU and 8 GiB usable, so an oversized flavor gets a real "No valid host".
            "compute_driver": "fake.FakeDriverWithoutFakeNodes", "host": "vimhost", "my_ip": HOST,
            "reserved_host_cpus": 1000 - 10, "reserved_host_memory_mb": 800000 - 8192,
            "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
            "state_path": data, "instances_path": data / "instances", "use_stderr": "true",
            "vif_plugging_is_fatal": "false", "vif_plugging_timeout": 0,
            "osapi_compute_workers": 1, "metadata_workers": 1, "graceful_shutdown_timeout": 5,
        },
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": layout.etc("nova") / "api-paste.ini"},
        "api_database": {"connection": db_url(ports, pw["database"], "nova_api")},
        "database": {"connection": db_url(ports, pw["database"], "nova")},
        "conductor": {"workers": 1},
        "scheduler": {"workers": 1, "discover_hosts_in_cells_interval": 2},
        "keystone_authtoken": service,
        "placement": client,
        "neutron": client,
        "glance": {"region_name": REGION},
        "oslo_concurrency": {"lock_path": data / "lock"},
        "vnc": {"enabled": "false"},
        "os_vif_ovs": {"ovsdb_connection": ""},
        "oslo_messaging_notifications": {"driver": "noop"},
    })
    write_file(layout.etc("nova") / "nova.conf", text, private=True)


def rabbitmq(layout, ports):
    text = "listeners.tcp.1 = %s:%d\nloopback_users.guest = true\n" % (HOST, ports["rabbit"])
    write_file(layout.etc("rabbitmq") / "rabbitmq.conf", text)


def clouds_yaml(layout, ports, pw):
    """One cloud per data centre (own project and user) plus `vim-admin` for the lab itself."""
    def entry(user, project, password):
        return {"auth": {"auth_url": url(ports, "keystone"), "username": user, "password": password,
                         "project_name": project, "user_domain_name": "Default",
                         "project_domain_name": "Default"},
                "region_name": REGION, "identity_api_version": 3, "interface": "public"}
    clouds = {"vim-admin": entry("admin", "admin", pw["admin"])}
    for dc in DATACENTRES:
        clouds[dc] = entry(dc, dc, pw[dc])
    write_file(layout.clouds_yaml, yaml.safe_dump({"clouds": clouds}, sort_keys=False), private=True)


def containers_conf(layout):
    # This machine's kernel refuses crun's defaults (RLIMIT_NOFILE without CAP_SYS_RESOURCE,
    # hybrid cgroups): runc with explicit ulimits works.
    text = ('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
            '[engine]\nruntime = "runc"\n')
    write_file(layout.containers_conf, text)
