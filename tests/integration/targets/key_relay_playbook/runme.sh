#!/usr/bin/env bash
# playbooks/relay_key.yml on the lab at -vvvv: over one trusted node (node1 -> node2 -> node5, the
# paper's Fig. 6) and over three (node1 -> node2 -> node5 -> node6 -> node7), in check mode, and
# with a bad path. Every key of each path (rebuilt from the destination's copy and the relayed
# values) is then searched for in the output and the log: any hit fails the target.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/runme-setup.sh"

trap 'rm -rf "$work"' EXIT

play() {  # play NAME PLAYBOOK ARGS...: run at -vvvv, output to $work/NAME.log
  local name=$1 playbook=$2
  shift 2
  # shellcheck disable=SC2086
  ansible-playbook -vvvv "$playbook" -e relay_key_dir="$work/$name/co" \
    -e relay_destination_key_dir="$work/$name/dc" "$@" ${ANSIBLE_PLAYBOOK_OPTS:-} >"$work/$name.log" 2>&1
}

relay() {  # relay NAME PATH_JSON [ARGS...]: a relay with its record, then every key of the path in $work/keys
  local name=$1 path=$2
  shift 2
  mkdir -m 700 "$work/$name.copy"
  play "$name" "$here/record.yml" -e "{\"relay_path\": $path}" -e relay_record="$work/$name.json" \
    -e relay_record_keys="$work/$name.copy" "$@" || { tail -n 60 "$work/$name.log"; exit 1; }
  grep -A1 '^PLAY RECAP' "$work/$name.log"
  "$python" "$here/rebuild_keys.py" "$work/$name.json" "$work/$name/dc" "$work/$name.copy" "$work/keys"
}

relay one_hop '["node2", "node5"]'
relay three_hops '["node2", "node5", "node6", "node7"]'

echo "=== relay_verify=false: the key waits in the destination's KME; an image crosses three trusted nodes"
head -c 2097152 /dev/urandom >"$work/vnf.img"
relay image '["node2", "node5", "node6", "node7"]' -e relay_verify=false -e relay_image="$work/vnf.img"
cmp "$work/vnf.img" "$work/vnf.img.received"

echo "=== check mode consumes nothing and reports the pools of every hop"
play check "$repo/playbooks/relay_key.yml" --check -e '{"relay_path": ["node2", "node5", "node6", "node7"]}' \
  || { tail -n 60 "$work/check.log"; exit 1; }
grep -q '"stored_key_count": \[' "$work/check.log"
test ! -e "$work/check/co" && test ! -e "$work/check/dc"

echo "=== a path without a trusted node is refused before any key is taken"
if play bad "$repo/playbooks/relay_key.yml" -e '{"relay_path": ["node2"]}'; then
  echo "relay_key.yml accepted a path without a trusted node" >&2
  exit 1
fi
grep -q 'Set relay_path to the inventory hosts after the origin' "$work/bad.log"
test ! -e "$work/bad/co"

echo "=== a relay that fails half-way leaves no key file behind"
if play broken "$repo/playbooks/relay_key.yml" -e '{"relay_path": ["node2", "node6"]}'; then
  echo "relay_key.yml relayed over a trusted node without a link to the destination" >&2
  exit 1
fi
grep -q 'no QKD link joins node2' "$work/broken.log"
grep -q 'Delete the keys of this relay' "$work/broken.log"
test -d "$work/broken/co" && test -z "$(ls -A "$work/broken/co")"

echo "=== no key of any path in the output or the log"
"$python" "$integration/../leakcheck.py" --keys "$work/keys" "$work"/*.log

echo "=== the leak check does find a key that is there (control)"
key=$(find "$work/keys" -name '*.key' | head -n 1)
od -An -tx1 "$key" | tr -d ' \n' >"$work/control.out"
if "$python" "$integration/../leakcheck.py" --keys "$work/keys" "$work/control.out" >/dev/null; then
  echo "the leak check missed a key written in hex" >&2
  exit 1
fi
echo "key_relay_playbook: passed"
