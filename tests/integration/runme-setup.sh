# shellcheck shell=bash disable=SC2034  # the variables are the caller's
# Sourced first by every target's runme.sh: where things are, and a private work directory.
#   here         the target's directory       integration, repo   tests/integration and the repository
#   python       the Python to run helpers    lab_dir             the lab's directory (QKDLAB_DIR)
#   work         a new 0700 directory, with ANSIBLE_LOG_PATH in it (the caller removes it)
# ANSIBLE_INVENTORY defaults to the lab's inventory.
here=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
integration=$(cd "$here/../.." && pwd)
repo=$(cd "$integration/../.." && pwd)
export ANSIBLE_INVENTORY="${ANSIBLE_INVENTORY:-$repo/inventory/lab}"
python=${PYTHON:-python}
lab_dir=${QKDLAB_DIR:-$repo/.lab}
work=$(mktemp -d)
chmod 700 "$work"
export ANSIBLE_LOG_PATH="$work/ansible.log"
