#!/usr/bin/env bash
# Runs the image_transfer target at -vvvv with a log file, then searches the output and the log for
# every key the target used (kept as witnesses in the work directory): any hit fails the target.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/runme-setup.sh"
export ANSIBLE_ROLES_PATH="${ANSIBLE_ROLES_PATH:-$integration/targets}"

trap 'rm -rf "$work"' EXIT
export IMAGE_TRANSFER_DIR="$work"

# shellcheck disable=SC2086
ansible-playbook "$integration/target.yml" -e target=image_transfer -e target_hosts=node1 -vvvv \
  ${ANSIBLE_PLAYBOOK_OPTS:-} >"$work/output.log" 2>&1 || { tail -n 80 "$work/output.log"; exit 1; }
grep -E '^(PLAY RECAP|node1 )' "$work/output.log"

if [ -z "$(ls -A "$work/witness" 2>/dev/null)" ] || [ ! -s "$work/ansible.log" ]; then
  echo "image_transfer: no witness keys or no log: the leak check would prove nothing" >&2
  exit 1
fi
python "$integration/../leakcheck.py" --keys "$work/witness" "$work/output.log" "$work/ansible.log"
