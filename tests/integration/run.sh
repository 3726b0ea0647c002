#!/usr/bin/env bash
# Runs integration targets against the running lab: tests/integration/run.sh [TARGET...]
# (all targets whose aliases do not say `disabled` when none is named). Extra ansible-playbook
# options can be passed in ANSIBLE_PLAYBOOK_OPTS. Needs ANSIBLE_COLLECTIONS_PATH set (make does it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export ANSIBLE_ROLES_PATH="$here/targets"
export ANSIBLE_INVENTORY="$repo/inventory/lab"
export ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for dir in "$here"/targets/*/; do
    name=$(basename "$dir")
    grep -qx disabled "$dir/aliases" 2>/dev/null && continue
    targets+=("$name")
  done
fi

failed=()
for target in "${targets[@]}"; do
  echo "=== integration target: $target"
  hosts=$(sed -n 's/^hosts=//p' "$here/targets/$target/aliases" 2>/dev/null || true)
  # A target with its own runme.sh drives ansible-playbook itself (leak checks, several plays).
  if [ -x "$here/targets/$target/runme.sh" ]; then
    (cd "$here/targets/$target" && ./runme.sh) || failed+=("$target")
  else
    # shellcheck disable=SC2086
    ansible-playbook "$here/target.yml" -e "target=$target" ${hosts:+-e "target_hosts=$hosts"} \
      ${ANSIBLE_PLAYBOOK_OPTS:-} || failed+=("$target")
  fi
done

n_failed=${#failed[@]}
echo "integration: $(( ${#targets[@]} - n_failed )) passed, $n_failed failed"
if [ "$n_failed" -gt 0 ]; then
  echo "failed targets: ${failed[*]}"
  exit 1
fi
