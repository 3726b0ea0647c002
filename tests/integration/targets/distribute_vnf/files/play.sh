# Sourced by the runme.sh of distribute_vnf and distribute_vnf_sftp, after runme-setup.sh and once
# `common` (the arguments of every run) is set:
#   play NAME ARGS...     distribute_vnf.yml at -vvvv, output in $work/NAME.log, report $work/NAME.json
#   fail WHY NAME         say why, show the run's tail and its report's rows, exit 1
#   observe, verify       files/observe.py and files/verify.py of the distribute_vnf target
#   recap NAME            the PLAY RECAP lines of a run;  sha FILE: its SHA-256
# shellcheck shell=bash
distribute_files=$integration/targets/distribute_vnf/files
target_name=$(basename "$here")

play() {
  local name=$1
  shift
  # shellcheck disable=SC2086
  ansible-playbook -vvvv "$repo/playbooks/distribute_vnf.yml" "${common[@]}" -e "vnf_report=$work/$name.json" \
    "$@" ${ANSIBLE_PLAYBOOK_OPTS:-} >"$work/$name.log" 2>&1
}
fail() {
  echo "$target_name: $1" >&2
  [ -f "$work/$2.log" ] && tail -n 60 "$work/$2.log" >&2
  [ -f "$work/$2.json" ] && "$python" -c 'import json, sys
for row in json.load(open(sys.argv[1]))["dcs"]:
    print("%s: %s %s" % (row["dc"], row["status"], row.get("msg", "")), file=sys.stderr)' "$work/$2.json"
  exit 1
}
observe() { "$python" "$distribute_files/observe.py" "$@"; }
verify() { "$python" "$distribute_files/verify.py" "$@"; }
recap() { grep -A6 '^PLAY RECAP' "$work/$1.log" | grep -E '^node' | sed 's/  */ /g' || true; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
