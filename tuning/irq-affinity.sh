#!/usr/bin/env bash
# Report (default) or set where NIC interrupts run.
set -euo pipefail
usage() {
    cat <<'U'
Usage: tuning/irq-affinity.sh [--iface NAME] [--shard-cpus LIST | --cpus LIST] [--apply]

Lists each NIC's IRQs (its PCI function's MSI/MSI-X vectors, or /proc/interrupts lines naming the
interface), the CPUs each may run on (smp_affinity_list), where it actually runs
(effective_affinity_list), its count per CPU, and whether irqbalance is running.

Why: a shard is one thread that owns its core. A NIC interrupt (and the softirq network processing
it triggers) landing on a shard's core steals time from that shard at unpredictable moments. Put
the NIC's IRQs on CPUs the shards do not use, ideally on the NIC's own NUMA node.

  --iface NAME        only this interface (default: every interface with a device, i.e. not lo/veth/ifb)
  --shard-cpus LIST   CPUs the broker's shards use (its --cpuset); IRQs go to all OTHER online CPUs
  --cpus LIST         explicit target CPUs for the IRQs (overrides --shard-cpus)
  --apply             write /proc/irq/N/smp_affinity_list, spreading the IRQs round-robin over the
                      target CPUs (root only). Without --apply the plan is printed, nothing changes.
  -h, --help          this text

Stop irqbalance first (systemctl stop irqbalance, or IRQBALANCE_BANNED_CPULIST=<shard cpus>), or it
moves the IRQs back. On this 2-CPU VM the shards use both CPUs, so --shard-cpus leaves no target:
the script refuses instead of guessing; --cpus works.
U
}
here="$(cd "$(dirname "$0")" && pwd)"; source "$here/lib.sh"
apply=0; iface=""; shard_cpus=""; cpus=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --apply) apply=1 ;;
        --iface) iface="${2:?--iface needs a name}"; shift ;;
        --shard-cpus) shard_cpus="${2:?--shard-cpus needs a list}"; shift ;;
        --cpus) cpus="${2:?--cpus needs a list}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

nic_irqs() { # $1 = iface -> IRQ numbers, one per line
    local dev="$SYS/class/net/$1/device" d
    for d in "$dev" "$dev/.."; do
        if [[ -d "$d/msi_irqs" ]] && [[ -n "$(ls "$d/msi_irqs")" ]]; then
            ls "$d/msi_irqs" | sort -n
            return
        fi
    done
    awk -v n="$1" '$1 ~ /^[0-9]+:$/ && index($0, n) { sub(":", "", $1); print $1 }' "$PROC/interrupts"
}
irq_name() { awk -v i="$1:" '$1 == i { print $NF }' "$PROC/interrupts"; }
irq_counts() { # counts per CPU, space-separated
    awk -v i="$1:" -v n="$(head -1 "$PROC/interrupts" | wc -w)" \
        '$1 == i { s=""; for (k = 2; k <= n + 1; k++) s = s $k " "; print s }' "$PROC/interrupts"
}

if [[ -n "$iface" ]]; then
    [[ -e "$SYS/class/net/$iface/device" ]] || die "no network device '$iface' with hardware behind it"
    ifaces="$iface"
else
    ifaces=""
    for p in "$SYS"/class/net/*; do
        [[ -e "$p/device" ]] && ifaces="$ifaces $(basename "$p")"
    done
fi
[[ -n "${ifaces// /}" ]] || { echo "no NICs with hardware queues found"; exit 0; }

online="$(expand_list "$(cat "$SYS/devices/system/cpu/online")")"
if [[ -n "$cpus" ]]; then
    targets="$(expand_list "$cpus")"
elif [[ -n "$shard_cpus" ]]; then
    used="$(expand_list "$shard_cpus")"
    targets="$(comm -23 <(echo "$online" | sort) <(echo "$used" | sort) | sort -n)"
    [[ -n "$targets" ]] || {
        [[ $apply -eq 1 ]] && die "every online CPU ($(echo $online | tr ' ' ,)) is a shard CPU: no CPU left for IRQs; give --cpus or run the broker with a smaller --cpuset"
        echo "note: every online CPU is a shard CPU; no CPU left for IRQs (give --cpus)"
    }
else
    targets=""
fi
for t in $targets; do
    echo "$online" | grep -qx "$t" || die "target CPU $t is not online"
done

irqbalance="no"
for c in "$PROC"/[0-9]*/comm; do
    [[ "$(cat "$c" 2>/dev/null)" == irqbalance ]] && irqbalance="yes"
done
echo "irqbalance running: $irqbalance$([[ $irqbalance == yes ]] && echo ' (it will override manual affinity)')"

all_irqs=()
for i in $ifaces; do
    node="$(cat "$SYS/class/net/$i/device/numa_node" 2>/dev/null || cat "$SYS/class/net/$i/device/../numa_node" 2>/dev/null || echo -1)"
    echo
    echo "$i: NUMA node $([[ "$node" == -1 ]] && echo 'n/a' || echo "$node"), queues: $(ls "$SYS/class/net/$i/queues" 2>/dev/null | tr '\n' ' ')"
    printf '  %-5s %-22s %-13s %-10s %s\n' irq name allowed effective "count per cpu"
    for irq in $(nic_irqs "$i"); do
        printf '  %-5s %-22s %-13s %-10s %s\n' "$irq" "$(irq_name "$irq")" \
            "$(cat "$PROC/irq/$irq/smp_affinity_list" 2>/dev/null || echo '?')" \
            "$(cat "$PROC/irq/$irq/effective_affinity_list" 2>/dev/null || echo '?')" "$(irq_counts "$irq")"
        all_irqs+=("$irq")
    done
done

[[ -n "$targets" ]] || { [[ $apply -eq 1 ]] && die "--apply needs --shard-cpus or --cpus"; exit 0; }
mapfile -t tarr <<<"$targets"
echo
echo "plan: spread ${#all_irqs[@]} IRQ(s) over CPUs $(echo $targets | tr ' ' ,)"
rc=0; k=0
if [[ $apply -eq 1 ]]; then require_root; fi
for irq in "${all_irqs[@]}"; do
    cpu="${tarr[$((k % ${#tarr[@]}))]}"; k=$((k + 1))
    if [[ $apply -eq 1 ]]; then
        write_value "$PROC/irq/$irq/smp_affinity_list" "$cpu" || rc=1
    else
        echo "  would set IRQ $irq ($(irq_name "$irq")) -> CPU $cpu"
    fi
done
[[ $apply -eq 1 ]] || echo "(report only: add --apply to change)"
exit $rc
