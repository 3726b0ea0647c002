# qkd.nfv — one command to test everything on a fresh machine (`make test`) and one to run the
# demo on the lab (`make demo`). Both install what they need: Debian packages, a venv with pinned
# Python packages, and the collection linked where Ansible finds it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
# Ansible finds the collection as ansible_collections/qkd/nfv below this directory (a link to here).
COLLECTIONS := $(or $(QKDNFV_COLLECTIONS),$(abspath $(or $(TMPDIR),/tmp))/qkd-nfv-$(shell id -u))
COLLECTION := $(COLLECTIONS)/ansible_collections/qkd/nfv
DEB_PACKAGES := openssh-server openssh-client openssl rabbitmq-server mariadb-server-core mariadb-client-core podman runc busybox-static time
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(COLLECTIONS):$(CURDIR)/lab
export PATH := $(BIN):$(PATH)
export ANSIBLE_NOCOLOR := 1
export NO_COLOR := 1
LAB := $(BIN)/python -m qkdlab

.PHONY: test deps venv collection units lab-tests vim-install sanity integration lint demo lab-up lab-down clean

test: deps venv collection
	@stages=0; \
	for stage in units lab-tests sanity integration lint; do \
	  echo "=== make $$stage"; \
	  $(MAKE) --no-print-directory $$stage; stages=$$((stages + 1)); \
	done; \
	echo "make test: $$stages passed, 0 failed"

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" -ne 0 ]; then echo "run as root, or install: $$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt tests/requirements.txt tests/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r tests/requirements.txt -c tests/constraints.txt
	$(BIN)/python tests/tools/ansible-test-pip.py
	touch $@

collection:
	mkdir -p $(dir $(COLLECTION))
	ln -sfn $(CURDIR) $(COLLECTION)

units: venv collection
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

lab-tests: venv deps vim-install
	cd lab && $(BIN)/python -m pytest -q -p no:cacheprovider tests

# The VIM's own venv (OpenStack from PyPI) and databases, made once; `up` and test_vim reuse them.
vim-install: venv deps
	$(BIN)/python -m qkdlab.vim install

# ansible-test works on the collection's real path, so it runs on a copy of the tracked files.
sanity: venv
	rm -rf $(COLLECTIONS)/sanity && mkdir -p $(COLLECTIONS)/sanity/ansible_collections/qkd/nfv
	git ls-files -co --exclude-standard | grep -v '^lab/\|^benchmarks/' \
	  | xargs -d '\n' cp --parents -t $(COLLECTIONS)/sanity/ansible_collections/qkd/nfv/
	cd $(COLLECTIONS)/sanity/ansible_collections/qkd/nfv && git init -q && git add -A \
	  && ansible-test sanity --python 3.11 --color no

integration: venv collection deps
	$(LAB) up
	trap '$(LAB) down' EXIT; tests/integration/run.sh

lint: venv collection
	ansible-lint --profile production

lab-up: venv
	$(LAB) up
	$(LAB) status

lab-down: venv
	$(LAB) down

# The paper's workflow on the lab: a 256 MiB demo VNF image, a warm-up of the time-shared QKD
# receiver (the scheduler visits every Alice so each DC's link holds keys), then the distribution to
# three DCs, first in check mode (changes nothing), then for real, with its report.
DEMO_IMAGE ?= demo-vnf.raw
DEMO_TARGETS ?= ["node2", "node3", "node4"]
PLAY := ansible-playbook -i inventory/lab
demo: deps venv collection vim-install lab-up
	$(PLAY) playbooks/make_demo_image.yml -e demo_image_name=$(DEMO_IMAGE)
	$(PLAY) playbooks/scheduler_loop.yml -e qkd_scheduler_ticks=25 -e qkd_scheduler_period=1
	$(PLAY) playbooks/distribute_vnf.yml --check -e vnf_image=$(DEMO_IMAGE) -e '{"vnf_targets": $(DEMO_TARGETS)}'
	$(PLAY) playbooks/distribute_vnf.yml -e vnf_image=$(DEMO_IMAGE) -e '{"vnf_targets": $(DEMO_TARGETS)}'

clean: lab-down
	rm -rf $(VENV) $(COLLECTIONS) tests/output
