#!/usr/bin/env bash
# Runs the qkd_key target at -vvvv with a log file, then searches the output and the log for every
# key the target took (base64, hex): any hit fails the target. Key files are removed on exit.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/runme-setup.sh"
export ANSIBLE_ROLES_PATH="${ANSIBLE_ROLES_PATH:-$integration/targets}"

trap 'rm -rf "$work"' EXIT
export QKD_KEY_TARGET_DIR="$work/keys"

# shellcheck disable=SC2086
ansible-playbook "$integration/target.yml" -e target=qkd_key -e target_hosts=node1 -vvvv \
  ${ANSIBLE_PLAYBOOK_OPTS:-} >"$work/output.log" 2>&1 || { tail -n 60 "$work/output.log"; exit 1; }
grep -E '^(PLAY RECAP|node1 )' "$work/output.log"

key_dirs=()
for dir in "$work"/keys/*/; do
  key_dirs+=(--keys "$dir")
done
if [ ${#key_dirs[@]} -eq 0 ] || [ ! -s "$work/ansible.log" ]; then
  echo "qkd_key: no key files or no log: the leak check would prove nothing" >&2
  exit 1
fi
python "$integration/../leakcheck.py" "${key_dirs[@]}" "$work/output.log" "$work/ansible.log"
