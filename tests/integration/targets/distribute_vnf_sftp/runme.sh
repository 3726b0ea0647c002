#!/usr/bin/env bash
# playbooks/distribute_vnf.yml with the image uploaded by SFTP, on the lab, the whole play at -vvvv:
#   0. a real OpenSSH sshd on 127.0.0.1 (files/sshd.py) is the SSH server of node2 and node3, each
#      with its own spool directory (inventory image_sftp_*);
#   1. check mode (-e vnf_transport=sftp): the SFTP targets are checked (each DC logs in once; with a
#      known_hosts that lacks the server's key node2 fails, naming the host key, and node3 goes on),
#      nothing is uploaded, no key is taken, the switch, the KMEs and the VIMs read back unchanged;
#   2. the real run: node2 and node3 in parallel over SFTP, installed, the report names the
#      transport, and no qstream or partial upload is left in the spool directories;
#   3. check mode again and the real run again: nothing to do, no key taken, nothing changed;
#   4. the transport per DC (inventory): node3 over SFTP, node2 over TCP, and node3's KME refuses:
#      node3 fails with the reason and its qstream is deleted, while node2 finishes;
#   5. every key the runs took is searched for in all output and logs (tests/leakcheck.py).
# The far-side observers, the warm-up and the VIM clean-up are those of the distribute_vnf target.
# VIM_CLOUDS_YAML selects the VIM (default: the lab's); QKDLAB_DIR the lab.
set -euo pipefail
. "$(cd "$(dirname "$0")/../.." && pwd)/runme-setup.sh"
tcp_target="$integration/targets/distribute_vnf"
clouds=${VIM_CLOUDS_YAML:-$lab_dir/vim/clouds.yaml}
if [ ! -r "$clouds" ]; then
  echo "distribute_vnf_sftp: no VIM at $clouds: start the lab with its VIM (or set VIM_CLOUDS_YAML)" >&2
  rm -rf "$work"
  exit 1
fi

export QKD_NFV_AUDIT_LOG="$work/audit.jsonl"
run=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
vnf=it-sftp-$run
image=$vnf.raw
refused_image=$vnf-b.raw
size=$((8 * 1024 * 1024))
dcs=(node2 node3)
mkdir -m 700 "$work/catalogue" "$work/dc" "$work/sshd" "$work/spool" "$work/spool/node2" "$work/spool/node3"

sshd_pid=
cleanup() {
  local vnfs
  if [ -n "$sshd_pid" ]; then
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
  fi
  vnfs="[{\"vnf\": \"$vnf\", \"image\": \"$image\", \"sha256\": \"${image_sha:-0}\"}"
  vnfs+=", {\"vnf\": \"$vnf\", \"image\": \"$refused_image\", \"sha256\": \"${refused_sha:-0}\"}]"
  ansible-playbook "$tcp_target/cleanup.yml" -e '{"cleanup_dcs": ["node2", "node3"]}' \
    -e "{\"cleanup_vnfs\": $vnfs}" -e "vim_clouds_yaml=$clouds" >"$work/cleanup.log" 2>&1 \
    || echo "distribute_vnf_sftp: cleaning the VIM failed, see $work/cleanup.log" >&2
  rm -rf "$work"
}
trap cleanup EXIT

echo "=== 0. sshd on 127.0.0.1"
"$python" "$here/files/sshd.py" "$work/sshd" "$work/sshd.json" &
sshd_pid=$!
for _ in $(seq 100); do
  [ -s "$work/sshd.json" ] && break
  kill -0 "$sshd_pid" 2>/dev/null || { echo "distribute_vnf_sftp: sshd did not start" >&2; exit 1; }
  sleep 0.1
done
sshd_info() { "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/sshd.json" "$1"; }
# Both DCs share the one server; each has its own spool directory.
{
  echo "all:"
  echo "  hosts:"
  for dc in "${dcs[@]}"; do
    echo "    $dc:"
    echo "      image_sftp_host: 127.0.0.1"
    echo "      image_sftp_port: $(sshd_info port)"
    echo "      image_sftp_user: $(sshd_info user)"
    echo "      image_sftp_private_key: $(sshd_info client_key)"
    echo "      image_sftp_known_hosts: $(sshd_info known_hosts)"
    echo "      image_sftp_spool_dir: $work/spool/$dc"
  done
} >"$work/sftp.yml"
logins() { grep -c 'Accepted publickey' "$work/sshd/sshd.log" || true; }
: >"$work/empty_known_hosts"
# For step 1: node2's known_hosts lacks the server's host key.
cat >"$work/unknown_host.yml" <<YAML
all:
  hosts:
    node2:
      image_sftp_known_hosts: $work/empty_known_hosts
YAML
# For step 4: node3 over SFTP (node2 keeps the default, TCP), presenting another SAE's certificate to its KME.
cat >"$work/refusing.yml" <<YAML
all:
  hosts:
    node3:
      vnf_transport: sftp
      kme_client_cert: "{{ lab_dir }}/pki/sae-node4.crt"
      kme_client_key: "{{ lab_dir }}/pki/sae-node4.key"
YAML

common=(-i "$ANSIBLE_INVENTORY" -i "$work/sftp.yml"
  -e "vnf_catalogue_dir=$work/catalogue" -e "dc_gateway_image_dir=$work/dc/{{ inventory_hostname }}"
  -e "vim_clouds_yaml=$clouds" -e vnf_flavor=vnf.tiny -e vnf_key_timeout=30 -e "vnf_name=$vnf"
  -e vnf_report_in_check_mode=true)

. "$integration/targets/distribute_vnf/files/play.sh"
transports() {  # transports NAME DC=TRANSPORT...: the report names each DC's transport
  "$python" - "$work/$1.json" "${@:2}" <<'PY' || fail "the report names the wrong transports" "$1"
import json, sys
rows = {row["dc"]: row for row in json.load(open(sys.argv[1]))["dcs"]}
wanted = dict(item.split("=") for item in sys.argv[2:])
got = {dc: rows[dc].get("transport") for dc in wanted}
assert got == wanted, "transports %s, expected %s" % (got, wanted)
PY
  grep -qE "^ *\"?node[23] +[a-z ]+ +(tcp|sftp) " "$work/$1.log" || fail "the printed report has no transport column" "$1"
}
spool_empty() {  # no qstream and no partial upload left in any spool directory
  local left
  left=$(find "$work/spool" -type f)
  [ -z "$left" ] || fail "left in the spool directories: $left" "$1"
}

echo "=== warm-up: the Bob visits node2's and node3's links until they hold keys"
ansible-playbook "$tcp_target/warm_up.yml" -e '{"warm_up_dcs": ["node2", "node3"]}' >"$work/warm_up.log" 2>&1 \
  || fail "the warm-up failed" warm_up

head -c $size /dev/urandom >"$work/catalogue/$image"
head -c $size /dev/urandom >"$work/catalogue/$refused_image"
image_sha=$(sha "$work/catalogue/$image")
refused_sha=$(sha "$work/catalogue/$refused_image")
observe snapshot "$work/snapshot.keys"
targets='{"vnf_targets": ["node2", "node3"]}'

echo "=== 1. check mode: the SFTP targets are checked, nothing is uploaded, nothing changes"
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/before.state"
before=$(logins)
play check1 --check -e vnf_transport=sftp -e vnf_image="$image" -e "$targets" || fail "check mode failed" check1
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_check1.state"
verify same "$work/before.state" "$work/after_check1.state"
verify report "$work/check1.json" $size "would send=node2,node3"
transports check1 node2=sftp node3=sftp
[ "$(logins)" -eq $((before + 2)) ] || fail "check mode did not log in to the SSH server once per DC" check1
test -z "$(find "$work/dc" "$work/spool" -mindepth 1 -type f)" || fail "check mode left files" check1
recap check1
if play check_host_key --check -i "$work/unknown_host.yml" -e vnf_transport=sftp -e vnf_image="$image" \
  -e "$targets"; then
  fail "check mode accepted an SSH server whose host key is not in known_hosts" check_host_key
fi
verify report "$work/check_host_key.json" $size "failed=node2" "would send=node3"
verify msg "$work/check_host_key.json" node2 "host key"
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_check_host_key.state"
verify same "$work/before.state" "$work/after_check_host_key.state"

echo "=== 2. the real run: node2 and node3 in parallel over SFTP"
play real1 -e vnf_transport=sftp -e vnf_image="$image" -e "$targets" || fail "the real run failed" real1
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_real1.state"
verify report "$work/real1.json" $size "installed=node2,node3"
verify vim "$work/real1.json" "$work/after_real1.state"
transports real1 node2=sftp node3=sftp
"$python" - "$work/real1.json" "$work/before.state" "$work/after_real1.state" <<'PY' || fail "the real run's report" real1
import json, sys
report, before, after = (json.load(open(p)) for p in sys.argv[1:])
assert report["waves"] == [["node2", "node3"]], "waves %s" % report["waves"]
rows = {row["dc"]: row for row in report["dcs"]}
assert all(row["path_action"] == "connected, released" for row in rows.values()), rows
assert after["pairs"] == before["pairs"], "the paths were not released: %s" % after["pairs"]
PY
for dc in "${dcs[@]}"; do
  cmp "$work/catalogue/$image" "$work/dc/$dc/$image" || fail "$dc holds another image" real1
done
spool_empty real1
recap real1

echo "=== 3. check mode again, and the real run again: nothing to do"
play check2 --check -e vnf_transport=sftp -e vnf_image="$image" -e "$targets" || fail "check mode again failed" check2
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_check2.state"
verify same "$work/after_real1.state" "$work/after_check2.state"
verify report "$work/check2.json" $size "unchanged=node2,node3"
transports check2 node2=sftp node3=sftp
play real2 -e vnf_transport=sftp -e vnf_image="$image" -e "$targets" || fail "the real run again failed" real2
observe state "$clouds" "$vnf" "$image" "${dcs[@]}" >"$work/after_real2.state"
verify same "$work/after_real1.state" "$work/after_real2.state"
verify report "$work/real2.json" $size "unchanged=node2,node3"
verify vim "$work/real2.json" "$work/after_real2.state"
if grep -E '^node[23] .*changed=[1-9]' <(recap real2); then fail "a DC reported a change on the rerun" real2; fi
spool_empty real2
recap real2

echo "=== 4. per DC: node3 over SFTP, node2 over TCP; node3's KME refuses, node2 finishes"
if play refused -i "$work/refusing.yml" -e vnf_image="$refused_image" -e "$targets"; then
  fail "the run with a refusing KME succeeded" refused
fi
verify report "$work/refused.json" $size "installed=node2" "failed=node3"
verify msg "$work/refused.json" node3 "refused"
transports refused node2=tcp node3=sftp
cmp "$work/catalogue/$refused_image" "$work/dc/node2/$refused_image" || fail "node2 holds another image" refused
test ! -e "$work/dc/node3/$refused_image" || fail "node3 installed an image its KME refused" refused
test -z "$(find "$work/dc" -name '*.part')" || fail "a partial image was left" refused
spool_empty refused
"$python" -c 'import json, sys; print("node3:", [r for r in json.load(open(sys.argv[1]))["dcs"] if r["dc"] == "node3"][0]["msg"])' \
  "$work/refused.json"
recap refused

echo "=== 5. no key in any output"
taken=$(observe witness "$work/snapshot.keys" "$work/witness")
# real1: node2 and node3 one key each; refused: node2 and node3 one each.
if [ "$taken" -lt 4 ]; then
  fail "only $taken keys left the pools; the runs took at least 4, so the witnesses are incomplete" real1
fi
test -s "$work/ansible.log" || fail "no Ansible log to search" real1
outputs=("$work"/*.log "$work"/*.json "$work"/*.state "$work/sshd/sshd.log")
[ -f "$work/audit.jsonl" ] && outputs+=("$work/audit.jsonl")
"$python" "$integration/../leakcheck.py" --keys "$work/witness" "${outputs[@]}"
key=$(find "$work/witness" -name '*.key' | head -n 1)
od -An -tx1 "$key" | tr -d ' \n' >"$work/control.out"
if "$python" "$integration/../leakcheck.py" --keys "$work/witness" "$work/control.out" >/dev/null; then
  fail "the leak check missed a key written in hex" real1
fi
echo "distribute_vnf_sftp: passed"
