#!/usr/bin/env bash
# Report (default) or set the CPU frequency governor.
set -euo pipefail
usage() {
    cat <<'U'
Usage: tuning/cpu-governor.sh [--apply [--governor NAME]] [--cpus LIST]

Reports, per CPU: the cpufreq driver, current governor, available governors, current/min/max
frequency, and the cpuidle driver. A thread-per-core broker wants `performance`: with
`powersave`/`schedutil` a shard that just woke from park runs its first microseconds at low
clock, which shows up directly in p99 latency.

  --apply            set the governor (root only)
  --governor NAME    governor to set with --apply (default: performance)
  --cpus LIST        only these CPUs (default: all online), e.g. 0,2-3
  -h, --help         this text

Without a cpufreq interface (most VMs, including the one this was written on) there is nothing to
set: the hypervisor owns frequency. The script says so and exits 0.
U
}
here="$(cd "$(dirname "$0")" && pwd)"; source "$here/lib.sh"
apply=0; gov=performance; cpus=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --apply) apply=1 ;;
        --governor) gov="${2:?--governor needs a name}"; shift ;;
        --cpus) cpus="${2:?--cpus needs a list}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ -n "$cpus" ]] || cpus="$(cat "$SYS/devices/system/cpu/online")"
list="$(expand_list "$cpus")"

echo "cpuidle driver: $(cat "$SYS/devices/system/cpu/cpuidle/current_driver" 2>/dev/null || echo none)"
if [[ ! -d "$SYS/devices/system/cpu/cpu0/cpufreq" ]]; then
    echo "no cpufreq interface ($SYS/devices/system/cpu/cpu0/cpufreq missing): frequency is not"
    echo "controlled by this kernel (typical in a VM). Nothing to report or set."
    exit 0
fi
printf '%-5s %-16s %-14s %-10s %-10s %-10s %s\n' cpu driver governor cur_kHz min_kHz max_kHz available
for c in $list; do
    d="$SYS/devices/system/cpu/cpu$c/cpufreq"
    [[ -d "$d" ]] || { echo "cpu$c: no cpufreq"; continue; }
    printf '%-5s %-16s %-14s %-10s %-10s %-10s %s\n' "$c" "$(cat "$d/scaling_driver" 2>/dev/null)" \
        "$(cat "$d/scaling_governor" 2>/dev/null)" "$(cat "$d/scaling_cur_freq" 2>/dev/null)" \
        "$(cat "$d/scaling_min_freq" 2>/dev/null)" "$(cat "$d/scaling_max_freq" 2>/dev/null)" \
        "$(cat "$d/scaling_available_governors" 2>/dev/null)"
done
if [[ $apply -eq 1 ]]; then
    require_root
    echo "setting governor '$gov' on CPUs $cpus:"
    rc=0
    for c in $list; do
        d="$SYS/devices/system/cpu/cpu$c/cpufreq"
        if ! grep -qw -- "$gov" "$d/scaling_available_governors" 2>/dev/null; then
            echo "  cpu$c: governor '$gov' not available ($(cat "$d/scaling_available_governors" 2>/dev/null))" >&2
            rc=1; continue
        fi
        write_value "$d/scaling_governor" "$gov" || rc=1
    done
    exit $rc
fi
