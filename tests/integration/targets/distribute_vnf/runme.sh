#!/usr/bin/env bash
# playbooks/distribute_vnf.yml on the lab, the whole play at -vvvv each time:
#   1. check mode on DCs that hold nothing yet: the switch, the KMEs' pools and reservations and the
#      VIMs read back unchanged;
#   2. the real run: node2, node3 and node4 in parallel (direct keys), then node5 (its key relayed
#      through node2; its data path shares the CO's transceiver port with node2's, so it waits);
#   3. check mode again and the real run again: nothing to do, no key taken, nothing changed;
#   4. a DC whose KME refuses (node3 presents sae-node4's certificate to its KME): node3 fails with
#      the KME's reason and its receiver stops, while node2 and node4 finish; with node3 alone, the
#      run fails and the report is still written;
#   5. every key the runs took is searched for in all output and logs (tests/leakcheck.py). The keys
#      are consumed, so they come from the far side: the lab's KMEs hand out keys from the front of
#      each link's pool, and files/observe.py records the fronts before the runs and writes the
#      blocks that left them as witnesses.
# VIM_CLOUDS_YAML selects the VIM (default: the lab's); QKDLAB_DIR the lab.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/runme-setup.sh"
clouds=${VIM_CLOUDS_YAML:-$lab_dir/vim/clouds.yaml}
if [ ! -r "$clouds" ]; then
  echo "distribute_vnf: no VIM at $clouds: start the lab with its VIM (or set VIM_CLOUDS_YAML)" >&2
  rm -rf "$work"
  exit 1
fi

# The key-usage audit trail of image_send (key_IDs only), kept with this run's output.
export QKD_NFV_AUDIT_LOG="$work/audit.jsonl"
run=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
vnf=it-dist-$run
image=$vnf.raw
refused_image=$vnf-b.raw
size=$((16 * 1024 * 1024))
dcs=(node2 node3 node4 node5)
mkdir -m 700 "$work/catalogue" "$work/dc" "$work/keys"

# node5 takes its key through node2 (a trusted node), as inventory/lab's topology has it.
cat >"$work/relay.yml" <<'YAML'
all:
  hosts:
    node5:
      relay_path: [node2, node5]
YAML
# For step 4: node3 presents another SAE's certificate to its own KME.
cat >"$work/refusing.yml" <<YAML
all:
  hosts:
    node3:
      kme_client_cert: "{{ lab_dir }}/pki/sae-node4.crt"
      kme_client_key: "{{ lab_dir }}/pki/sae-node4.key"
YAML

common=(-i "$ANSIBLE_INVENTORY" -i "$work/relay.yml"
  -e "vnf_catalogue_dir=$work/catalogue" -e "dc_gateway_image_dir=$work/dc/{{ inventory_hostname }}"
  -e "nfv_orchestrator_key_dir=$work/keys" -e "vim_clouds_yaml=$clouds" -e vnf_flavor=vnf.tiny
  -e vnf_key_timeout=30 -e "vnf_name=$vnf" -e vnf_report_in_check_mode=true)

. "$integration/targets/distribute_vnf/files/play.sh"

cleanup() {
  local vnfs
  vnfs="[{\"vnf\": \"$vnf\", \"image\": \"$image\", \"sha256\": \"${image_sha:-0}\"}"
  vnfs+=", {\"vnf\": \"$vnf\", \"image\": \"$refused_image\", \"sha256\": \"${refused_sha:-0}\"}]"
  ansible-playbook "$here/cleanup.yml" -e '{"cleanup_dcs": ["node2", "node3", "node4", "node5"]}' \
    -e "{\"cleanup_vnfs\": $vnfs}" -e "vim_clouds_yaml=$clouds" >"$work/cleanup.log" 2>&1 \
    || echo "distribute_vnf: cleaning the VIM failed, see $work/cleanup.log" >&2
  rm -rf "$work"
}
trap cleanup EXIT

echo "=== warm-up: the Bob visits node3's and node4's links until they hold keys"
ansible-playbook "$here/warm_up.yml" -e '{"warm_up_dcs": ["node2", "node3", "node4"]}' >"$work/warm_up.log" 2>&1 \
  || fail "the warm-up failed" warm_up

head -c $size /dev/urandom >"$work/catalogue/$image"
head -c $size /dev/urandom >"$work/catalogue/$refused_image"
image_sha=$(sha "$work/catalogue/$image")
refused_sha=$(sha "$work/catalogue/$refused_image")
observe snapshot "$work/snapshot.keys"
targets='{"vnf_targets": ["node2", "node3", "node4", "node5"]}'

echo "=== 1. check mode changes nothing"
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/before.state"
play check1 --check -e vnf_image="$image" -e "$targets" || fail "check mode failed" check1
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_check1.state"
verify same "$work/before.state" "$work/after_check1.state"
verify report "$work/check1.json" $size "would send=node2,node3,node4,node5"
test -z "$(find "$work/dc" "$work/keys" -mindepth 1)" || fail "check mode left files" check1
recap check1

echo "=== 2. the real run: node2, node3, node4 in parallel, then node5 through a trusted node"
play real1 -e vnf_image="$image" -e "$targets" || fail "the real run failed" real1
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_real1.state"
verify report "$work/real1.json" $size "installed=node2,node3,node4,node5"
verify vim "$work/real1.json" "$work/after_real1.state"
"$python" - "$work/real1.json" "$work/before.state" "$work/after_real1.state" <<'PY'
import json, sys
report, before, after = (json.load(open(p)) for p in sys.argv[1:])
waves = report["waves"]
assert waves == [["node2", "node3", "node4"], ["node5"]], "waves %s" % waves
rows = {row["dc"]: row for row in report["dcs"]}
assert rows["node5"]["relay"] == ["node2"], rows["node5"]
assert all(row["path_action"] == "connected, released" for row in rows.values()), rows
assert after["pairs"] == before["pairs"], "the paths were not released: %s" % after["pairs"]
PY
for dc in node2 node3 node4 node5; do
  cmp "$work/catalogue/$image" "$work/dc/$dc/$image" || fail "$dc holds another image" real1
done
test -z "$(ls -A "$work/keys")" || fail "a relayed key file was left on the CO" real1
recap real1

echo "=== 3. check mode again, and the real run again: nothing to do"
play check2 --check -e vnf_image="$image" -e "$targets" || fail "check mode again failed" check2
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_check2.state"
verify same "$work/after_real1.state" "$work/after_check2.state"
verify report "$work/check2.json" $size "unchanged=node2,node3,node4,node5"
play real2 -e vnf_image="$image" -e "$targets" || fail "the real run again failed" real2
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_real2.state"
verify same "$work/after_real1.state" "$work/after_real2.state"
verify report "$work/real2.json" $size "unchanged=node2,node3,node4,node5"
verify vim "$work/real2.json" "$work/after_real2.state"
if grep -E '^node[2-5] .*changed=[1-9]' <(recap real2); then fail "a DC reported a change on the rerun" real2; fi
recap real2

echo "=== 4. node3's KME refuses node3; node2 and node4 finish"
if play refused -i "$work/refusing.yml" -e vnf_image="$refused_image" \
  -e '{"vnf_targets": ["node2", "node3", "node4"]}'; then
  fail "the run with a refusing KME succeeded" refused
fi
verify report "$work/refused.json" $size "installed=node2,node4" "failed=node3"
verify msg "$work/refused.json" node3 "refused"
test ! -e "$work/dc/node3/$refused_image" || fail "node3 installed an image its KME refused" refused
test -z "$(find "$work/dc" -name '*.part')" || fail "a partial image was left" refused
port=$(ansible node3 -m ansible.builtin.debug -a 'msg={{ image_receive_port }}' | grep -o '"msg": [0-9]*' | grep -o '[0-9]*$')
"$python" -c 'import socket, sys; socket.create_server(("127.0.0.1", int(sys.argv[1]))).close()' "$port" \
  || fail "node3's receiver still holds its port $port" refused
"$python" -c 'import json, sys; print("node3:", [r for r in json.load(open(sys.argv[1]))["dcs"] if r["dc"] == "node3"][0]["msg"])' \
  "$work/refused.json"
recap refused
# When every DC fails, the report is still written (then the run fails).
if play all_refused -i "$work/refusing.yml" -e vnf_image="$refused_image" -e '{"vnf_targets": ["node3"]}'; then
  fail "the run in which every DC failed succeeded" all_refused
fi
verify report "$work/all_refused.json" $size "failed=node3"
recap all_refused

echo "=== 5. no key in any output"
taken=$(observe witness "$work/snapshot.keys" "$work/witness")
# real1: node2, node3, node4 one key each, node5 two (one per hop); refused: node2, node3, node4.
if [ "$taken" -lt 8 ]; then
  fail "only $taken keys left the pools; the runs took at least 8, so the witnesses are incomplete" real1
fi
test -s "$work/ansible.log" || fail "no Ansible log to search" real1
outputs=("$work"/*.log "$work"/*.json "$work"/*.state)
[ -f "$work/audit.jsonl" ] && outputs+=("$work/audit.jsonl")
"$python" "$integration/../leakcheck.py" --keys "$work/witness" "${outputs[@]}"
# Control: the check does find a witness key that is there.
key=$(find "$work/witness" -name '*.key' | head -n 1)
od -An -tx1 "$key" | tr -d ' \n' >"$work/control.out"
if "$python" "$integration/../leakcheck.py" --keys "$work/witness" "$work/control.out" >/dev/null; then
  fail "the leak check missed a key written in hex" real1
fi
echo "distribute_vnf: passed"
