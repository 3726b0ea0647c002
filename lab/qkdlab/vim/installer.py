"""Install the VIM: a Python 3.11 virtualenv of its own with the pinned OpenStack services.

Debian packages are the caller's business (they need root and apt): rabbitmq-server for Nova's
message bus, mariadb-server-core and mariadb-client-core for the databases; podman and runc for
container VNFs. `missing_system_packages()` says what is absent.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from .layout import Layout

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
CONSTRAINTS = HERE / "constraints.txt"
SYSTEM_PACKAGES = {  # Debian package -> a file it installs
    "rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "mariadb-server-core": "/usr/sbin/mariadbd",
    "mariadb-client-core": "/usr/bin/my_print_defaults",  # mariadb-install-db needs it
}
OPTIONAL_PACKAGES = {
    "podman": "/usr/bin/podman",
    "runc": "/usr/sbin/runc",
}


def _pins_digest():
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def installed(lab_dir):
    layout = Layout(Path(lab_dir))
    marker = layout.installed_marker
    return marker.exists() and marker.read_text().strip() == _pins_digest()


def missing_system_packages(optional=False):
    wanted = dict(SYSTEM_PACKAGES, **(OPTIONAL_PACKAGES if optional else {}))
    return sorted(name for name, path in wanted.items() if not Path(path).exists())


def _python311():
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    found = shutil.which("python3.11")
    if not found:
        raise RuntimeError("the VIM needs Python 3.11 (python3.11 not found on PATH)")
    return found


def _run(argv, what):
    proc = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (what, proc.returncode,
                                                    proc.stdout.decode(errors="replace")[-3000:]))


def install(lab_dir):
    """Create <lab_dir>/vim/venv with the pinned services; a no-op when the pins are installed."""
    if installed(lab_dir):
        return False
    layout = Layout(Path(lab_dir))
    missing = missing_system_packages()
    if missing:
        raise RuntimeError("missing Debian packages: %s (apt-get install -y --no-install-recommends %s)"
                           % (", ".join(missing), " ".join(missing)))
    layout.root.mkdir(parents=True, exist_ok=True)
    if not layout.bin("python").exists():
        _run([_python311(), "-m", "venv", layout.venv], "python3.11 -m venv")
    pip = [layout.bin("python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    # Wheels wherever PyPI has them; only uWSGI builds from source (once: pip caches the wheel).
    _run(pip + ["install", "--prefer-binary", "-r", REQUIREMENTS, "-c", CONSTRAINTS], "pip install")
    layout.installed_marker.write_text(_pins_digest() + "\n")
    return True
