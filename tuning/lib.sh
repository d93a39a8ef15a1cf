# shellcheck shell=bash
# Shared helpers for the tuning/ scripts (sourced, not run).
# TUNING_SYSFS / TUNING_PROCFS replace /sys and /proc so --apply can be exercised on a fake tree.
# shellcheck disable=SC2034  # used by the scripts that source this file
SYS="${TUNING_SYSFS:-/sys}"
# shellcheck disable=SC2034
PROC="${TUNING_PROCFS:-/proc}"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# --apply changes the machine: only as root (a fake tree via TUNING_* is allowed for testing).
require_root() {
    if [[ "$(id -u)" -ne 0 && -z "${TUNING_SYSFS:-}${TUNING_PROCFS:-}" ]]; then
        die "--apply needs root (run without --apply for a read-only report)"
    fi
}

# Expands a Linux CPU list ("0,2-3") to one number per line.
expand_list() {
    local item a b
    local IFS=','
    for item in $1; do
        item="${item// /}"
        [[ -z "$item" ]] && continue
        if [[ "$item" =~ ^([0-9]+)-([0-9]+)$ ]]; then
            a="${BASH_REMATCH[1]}"; b="${BASH_REMATCH[2]}"
            (( a <= b )) || die "reversed range '$item'"
            seq "$a" "$b"
        elif [[ "$item" =~ ^[0-9]+$ ]]; then
            echo "$item"
        else
            die "'$item' is not a CPU list item (expected e.g. 0,2-3)"
        fi
    done
}

# Writes a value to a /sys or /proc file, saying what changed.
write_value() {
    local path="$1" value="$2" before
    before="$(cat "$path" 2>/dev/null || echo '?')"
    if ! echo "$value" > "$path" 2>/dev/null; then
        echo "  FAILED  $path: could not write '$value' (was: $before)" >&2
        return 1
    fi
    echo "  set     $path: $before -> $(cat "$path" 2>/dev/null || echo "$value")"
}
