"""Give ansible-test a pip bootstrap that works without its download host.

ansible-test bootstraps pip into each test venv with a script it downloads from its own CI host.
Where only PyPI is reachable, this writes a stand-in for that script into ansible-test's cache
which installs the same pip version from the pip wheel on PyPI. Run with the venv's python:
    python tests/tools/ansible-test-pip.py [CACHE_DIR]     (default ~/.ansible/test/cache)
"""

import pathlib
import re
import subprocess
import sys

import ansible_test

src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
version = re.search(r"pip='([0-9.]+)'", src).group(1)
cache = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "~/.ansible/test/cache").expanduser()
cache.mkdir(parents=True, exist_ok=True)
stand_in = cache / ("get_pip_%s.py" % version.replace(".", "_"))
wheel = cache / ("pip-%s-py3-none-any.whl" % version)
if not wheel.exists():
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(cache),
                    "pip==%s" % version], check=True)
stand_in.write_text('''# Stand-in for get-pip-{v}.py: installs pip {v} from the cached wheel.
import os, runpy, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "pip-{v}-py3-none-any.whl"))
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", "--find-links", HERE] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
'''.format(v=version))
print("pip %s bootstrap for ansible-test: %s" % (version, stand_in))
