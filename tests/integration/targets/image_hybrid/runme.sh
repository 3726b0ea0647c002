#!/usr/bin/env bash
# Runs the image_hybrid target at -vvvv with a log file, then searches the output, the log and both
# audit trails for every secret the target could record (QKD key, ML-KEM shared secret, both private
# keys, kept as 0600 witness files in the work directory): any hit fails the target.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/runme-setup.sh"
export ANSIBLE_ROLES_PATH="${ANSIBLE_ROLES_PATH:-$integration/targets}"

trap 'rm -rf "$work"' EXIT
export IMAGE_HYBRID_DIR="$work"

# shellcheck disable=SC2086
ansible-playbook "$integration/target.yml" -e target=image_hybrid -e target_hosts=node1 -vvvv \
  ${ANSIBLE_PLAYBOOK_OPTS:-} >"$work/output.log" 2>&1 || { tail -n 80 "$work/output.log"; exit 1; }
grep -E '^(PLAY RECAP|node1 )' "$work/output.log"

witnesses=$(ls -A "$work/witness" 2>/dev/null | wc -l)
if [ "$witnesses" -lt 4 ] || [ ! -s "$work/ansible.log" ] || [ ! -s "$work/co/audit.jsonl" ] || [ ! -s "$work/dc/audit.jsonl" ]; then
  echo "image_hybrid: $witnesses witnesses, or no log or audit trail: the leak check would prove nothing" >&2
  exit 1
fi
if grep -l "PRIVATE KEY" "$work/output.log" "$work/ansible.log" "$work/co/audit.jsonl" "$work/dc/audit.jsonl"; then
  echo "image_hybrid: a PEM private key appears in the files above" >&2
  exit 1
fi
python "$integration/../leakcheck.py" --keys "$work/witness" \
  "$work/output.log" "$work/ansible.log" "$work/co/audit.jsonl" "$work/dc/audit.jsonl"
