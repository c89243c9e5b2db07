#!/bin/sh
# Demo "removal" program for offboard's exec connector.
#
# Usage: remove-account.sh APP ACCOUNT
#
# offboard runs it without a shell, with a cleared environment holding only PATH, OFFBOARD_ACCOUNT,
# OFFBOARD_EMPLOYEE_ID, OFFBOARD_REMOVAL_ID and OFFBOARD_ATTEMPT. It records the removal in
# state/removed.log next to this script and exits:
#   0  removed
#   2  usage error (exit_permanent: no retry)
#   3  the app has no such account (exit_already_absent: counts as success)
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: remove-account.sh APP ACCOUNT" >&2
    exit 2
fi
app=$1
account=$2
state_dir=$(dirname "$0")/state
mkdir -p "$state_dir"
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# The demo wiki never had an account for this person.
if [ "$app" = wiki ] && [ "$account" = dana.kim@example.org ]; then
    printf '%s %s %s already-absent employee=%s removal=%s attempt=%s\n' \
        "$now" "$app" "$account" "${OFFBOARD_EMPLOYEE_ID:-}" "${OFFBOARD_REMOVAL_ID:-}" "${OFFBOARD_ATTEMPT:-}" \
        >>"$state_dir/removed.log"
    echo "$app: no account $account" >&2
    exit 3
fi

printf '%s %s %s removed employee=%s removal=%s attempt=%s\n' \
    "$now" "$app" "$account" "${OFFBOARD_EMPLOYEE_ID:-}" "${OFFBOARD_REMOVAL_ID:-}" "${OFFBOARD_ATTEMPT:-}" \
    >>"$state_dir/removed.log"
echo "$app: removed $account" >&2
exit 0
