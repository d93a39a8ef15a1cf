#!/usr/bin/env python3
"""Report the machine topology that matters for placing shardlog shards.

Reads only /sys and /proc (no root needed, changes nothing): online CPUs and the process's
affinity mask, SMT siblings, cores per package, NUMA nodes with their CPUs and memory, CPU caches
(who shares each level), network interfaces with their RX/TX queues and IRQs (and where those IRQs
are allowed to run), the CPU frequency governor, transparent huge pages, and the sysctls the other
scripts in tuning/ look at.

Usage:
  tuning/topology.py            human-readable tables
  tuning/topology.py --json     the same data as one JSON document
  tuning/topology.py --suggest  also print a suggested --cpuset per NUMA node (what tuning/README.md explains)

Environment: TUNING_SYSFS / TUNING_PROCFS replace /sys and /proc (for testing on a fake tree).
"""
import json
import os
import re
import sys

SYS = os.environ.get("TUNING_SYSFS", "/sys")
PROC = os.environ.get("TUNING_PROCFS", "/proc")

SYSCTLS = [
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.netdev_max_backlog",
    "vm.swappiness",
    "vm.dirty_background_ratio",
    "vm.dirty_ratio",
    "vm.dirty_background_bytes",
    "vm.dirty_bytes",
    "vm.dirty_expire_centisecs",
    "vm.dirty_writeback_centisecs",
    "fs.file-max",
    "fs.aio-max-nr",
    "kernel.numa_balancing",
    "vm.zone_reclaim_mode",
]


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def parse_list(text):
    """Linux CPU/node list '0-3,6' -> [0,1,2,3,6]."""
    out = []
    if not text:
        return out
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def fmt_list(cpus):
    cpus = sorted(set(cpus))
    parts, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def cpus_info():
    online = parse_list(read(f"{SYS}/devices/system/cpu/online", ""))
    try:
        allowed = sorted(os.sched_getaffinity(0)) if SYS == "/sys" else online
    except AttributeError:
        allowed = online
    cpus = []
    for c in online:
        base = f"{SYS}/devices/system/cpu/cpu{c}"
        node = None
        try:
            for e in os.listdir(base):
                m = re.fullmatch(r"node(\d+)", e)
                if m:
                    node = int(m.group(1))
        except OSError:
            pass
        cpus.append(
            {
                "cpu": c,
                "package": int(read(f"{base}/topology/physical_package_id", "-1")),
                "core": int(read(f"{base}/topology/core_id", "-1")),
                "smt_siblings": parse_list(read(f"{base}/topology/thread_siblings_list", str(c))),
                "node": node,
                "in_affinity_mask": c in allowed,
                "governor": read(f"{base}/cpufreq/scaling_governor"),
                "cur_khz": read(f"{base}/cpufreq/scaling_cur_freq"),
            }
        )
    return online, allowed, cpus


def nodes_info():
    nodes = []
    base = f"{SYS}/devices/system/node"
    for n in parse_list(read(f"{base}/online", "")):
        mem_kb = None
        meminfo = read(f"{base}/node{n}/meminfo", "")
        m = re.search(r"MemTotal:\s+(\d+) kB", meminfo or "")
        if m:
            mem_kb = int(m.group(1))
        distances = [int(x) for x in (read(f"{base}/node{n}/distance", "") or "").split()]
        nodes.append(
            {
                "node": n,
                "cpus": parse_list(read(f"{base}/node{n}/cpulist", "")),
                "mem_mb": mem_kb // 1024 if mem_kb is not None else None,
                "distances": distances,
            }
        )
    return nodes


def caches_info(online):
    seen = {}
    for c in online:
        base = f"{SYS}/devices/system/cpu/cpu{c}/cache"
        try:
            idx = sorted(e for e in os.listdir(base) if e.startswith("index"))
        except OSError:
            continue
        for i in idx:
            d = f"{base}/{i}"
            key = (read(f"{d}/level"), read(f"{d}/type"), read(f"{d}/shared_cpu_list"))
            if key not in seen:
                seen[key] = {
                    "level": int(key[0] or 0),
                    "type": key[1],
                    "size": read(f"{d}/size"),
                    "line_bytes": int(read(f"{d}/coherency_line_size", "0") or 0),
                    "shared_by": parse_list(key[2]),
                }
    return sorted(seen.values(), key=lambda x: (x["level"], x["type"] or "", x["shared_by"]))


def interrupts():
    """{irq: (name, [count per cpu])} from /proc/interrupts."""
    text = read(f"{PROC}/interrupts", "") or ""
    lines = text.splitlines()
    if not lines:
        return {}, 0
    ncpu = len(lines[0].split())
    out = {}
    for line in lines[1:]:
        parts = line.split()
        if not parts or not parts[0].rstrip(":").isdigit():
            continue
        irq = int(parts[0].rstrip(":"))
        counts = [int(x) for x in parts[1 : 1 + ncpu] if x.isdigit()]
        name = parts[-1] if len(parts) > 1 + ncpu else ""
        out[irq] = (name, counts)
    return out, ncpu


def nic_irqs(iface, irqtab):
    """IRQ numbers of a NIC: its PCI function's MSI vectors (the device itself, or the virtio
    device's PCI parent), else /proc/interrupts lines that name the interface."""
    dev = f"{SYS}/class/net/{iface}/device"
    for d in (dev, f"{dev}/.."):
        try:
            irqs = sorted(int(x) for x in os.listdir(f"{d}/msi_irqs"))
            if irqs:
                return irqs
        except (OSError, ValueError):
            pass
    return sorted(i for i, (name, _) in irqtab.items() if iface in name)


def nics_info():
    irqtab, _ = interrupts()
    out = []
    try:
        ifaces = sorted(os.listdir(f"{SYS}/class/net"))
    except OSError:
        ifaces = []
    for iface in ifaces:
        if not os.path.exists(f"{SYS}/class/net/{iface}/device"):
            continue  # lo, bridges, ifb, veth: no hardware queues or IRQs
        qdir = f"{SYS}/class/net/{iface}/queues"
        try:
            queues = sorted(os.listdir(qdir))
        except OSError:
            queues = []
        rx = [q for q in queues if q.startswith("rx-")]
        tx = [q for q in queues if q.startswith("tx-")]
        irqs = []
        for irq in nic_irqs(iface, irqtab):
            name, counts = irqtab.get(irq, ("", []))
            irqs.append(
                {
                    "irq": irq,
                    "name": name,
                    "smp_affinity_list": read(f"{PROC}/irq/{irq}/smp_affinity_list"),
                    "effective_affinity_list": read(f"{PROC}/irq/{irq}/effective_affinity_list"),
                    "count_per_cpu": counts,
                }
            )
        rps = {q: read(f"{qdir}/{q}/rps_cpus") for q in rx}
        xps = {q: read(f"{qdir}/{q}/xps_cpus") for q in tx}
        out.append(
            {
                "iface": iface,
                "driver": os.path.basename(os.path.realpath(f"{SYS}/class/net/{iface}/device/driver")),
                "numa_node": read(f"{SYS}/class/net/{iface}/device/numa_node")
                or read(f"{SYS}/class/net/{iface}/device/../numa_node"),
                "speed_mbps": read(f"{SYS}/class/net/{iface}/speed"),
                "rx_queues": len(rx),
                "tx_queues": len(tx),
                "rps_cpus": rps,
                "xps_cpus": xps,
                "irqs": irqs,
            }
        )
    return out


def sysctls():
    return {k: read(f"{PROC}/sys/" + k.replace(".", "/")) for k in SYSCTLS}


def thp():
    base = f"{SYS}/kernel/mm/transparent_hugepage"

    def sel(v):
        m = re.search(r"\[(\w[\w+]*)\]", v or "")
        return m.group(1) if m else v

    return {
        "enabled": sel(read(f"{base}/enabled")),
        "defrag": sel(read(f"{base}/defrag")),
        "khugepaged_defrag": read(f"{base}/khugepaged/defrag"),
    }


def balloon():
    """The virtio balloon, if any, and whether it reports free pages to the host (feature bit 5,
    VIRTIO_BALLOON_F_REPORTING): then every page-cache page allocated from reported memory costs
    a host page fault (see log.drop.behind.bytes in docs/PERFORMANCE.md, "Drop-behind")."""
    base = f"{SYS}/bus/virtio/devices"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return None
    for name in names:
        if read(f"{base}/{name}/device") == "0x0005":
            features = read(f"{base}/{name}/features") or ""
            return {"device": name, "free_page_reporting": len(features) > 5 and features[5] == "1"}
    return None


def collect():
    online, allowed, cpus = cpus_info()
    nodes = nodes_info()
    governors = sorted({c["governor"] for c in cpus if c["governor"]})
    return {
        "cpus_online": online,
        "cpus_in_affinity_mask": allowed,
        "packages": len({c["package"] for c in cpus}),
        "physical_cores": len({(c["package"], c["core"]) for c in cpus}),
        "smt": any(len(c["smt_siblings"]) > 1 for c in cpus),
        "cpus": cpus,
        "numa_nodes": nodes,
        "caches": caches_info(online),
        "nics": nics_info(),
        "cpufreq": {
            "driver": read(f"{SYS}/devices/system/cpu/cpu0/cpufreq/scaling_driver"),
            "governors": governors,
            "available": read(f"{SYS}/devices/system/cpu/cpu0/cpufreq/scaling_available_governors"),
            "cpuidle_driver": read(f"{SYS}/devices/system/cpu/cpuidle/current_driver"),
        },
        "thp": thp(),
        "balloon": balloon(),
        "sysctls": sysctls(),
        "irqbalance_running": irqbalance_running(),
    }


def irqbalance_running():
    try:
        for pid in os.listdir(PROC):
            if pid.isdigit() and read(f"{PROC}/{pid}/comm") == "irqbalance":
                return True
    except OSError:
        pass
    return False


def table(headers, rows):
    rows = [[("" if v is None else str(v)) for v in r] for r in rows]
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  " + "  ".join(h.ljust(w[i]) for i, h in enumerate(headers)))
    for r in rows:
        print("  " + "  ".join(v.ljust(w[i]) for i, v in enumerate(r)))


def suggest(t):
    """One --cpuset per node, leaving CPU 0 of the machine and one sibling-free CPU per node for
    IRQs and housekeeping when there is room."""
    print("\nSuggested placement (see tuning/README.md):")
    mask = set(t["cpus_in_affinity_mask"])
    for n in t["numa_nodes"]:
        cpus = [c for c in n["cpus"] if c in mask]
        # one hardware thread per physical core: SMT siblings share the core's execution units
        firsts = sorted({min(c2["smt_siblings"]) for c2 in t["cpus"] if c2["cpu"] in cpus})
        irq = firsts[:1] if len(firsts) > 2 else []
        shards = [c for c in firsts if c not in irq]
        print(
            f"  node {n['node']}: --cpuset {fmt_list(shards)}"
            + (f"   (NIC IRQs: tuning/irq-affinity.sh --apply --cpus {fmt_list(irq)})" if irq else
               "   (too few cores to reserve one for IRQs)")
        )
    if len(t["numa_nodes"]) > 1:
        print("  multi-node: run one broker per node (or one cpuset spanning nodes and accept cross-node hops)")


def human(t):
    print(
        f"CPUs online {fmt_list(t['cpus_online'])}; affinity mask {fmt_list(t['cpus_in_affinity_mask'])}; "
        f"{t['packages']} package(s), {t['physical_cores']} physical core(s), SMT {'on' if t['smt'] else 'off'}; "
        f"{len(t['numa_nodes'])} NUMA node(s)"
    )
    print("\nCPUs")
    table(
        ["cpu", "package", "core", "smt siblings", "node", "in mask", "governor"],
        [[c["cpu"], c["package"], c["core"], fmt_list(c["smt_siblings"]), c["node"], "yes" if c["in_affinity_mask"] else "NO", c["governor"] or "-"] for c in t["cpus"]],
    )
    print("\nNUMA nodes")
    table(
        ["node", "cpus", "memory MB", "distances"],
        [[n["node"], fmt_list(n["cpus"]), n["mem_mb"], " ".join(map(str, n["distances"]))] for n in t["numa_nodes"]],
    )
    print("\nCaches (one row per distinct cache)")
    table(
        ["level", "type", "size", "line", "shared by cpus"],
        [[c["level"], c["type"], c["size"], c["line_bytes"], fmt_list(c["shared_by"])] for c in t["caches"]],
    )
    print("\nNICs (devices with hardware queues)")
    if not t["nics"]:
        print("  none found")
    for n in t["nics"]:
        print(
            f"  {n['iface']}: driver {n['driver']}, NUMA node {n['numa_node'] if n['numa_node'] not in (None, '-1') else 'n/a'}, "
            f"speed {n['speed_mbps'] or '?'} Mb/s, {n['rx_queues']} rx / {n['tx_queues']} tx queue(s)"
        )
        table(
            ["irq", "name", "allowed cpus", "effective", "count per cpu"],
            [[i["irq"], i["name"], i["smp_affinity_list"], i["effective_affinity_list"], " ".join(map(str, i["count_per_cpu"]))] for i in n["irqs"]],
        )
        rps = {q: v for q, v in n["rps_cpus"].items() if v and set(v.replace(",", "")) != {"0"}}
        print(f"    RPS: {rps or 'off'}")
    f = t["cpufreq"]
    print("\nCPU frequency")
    if f["driver"] is None:
        print("  no cpufreq interface (typical in VMs: the hypervisor controls frequency)")
    else:
        print(f"  driver {f['driver']}, governor(s) {', '.join(f['governors'])}; available: {f['available']}")
    print(f"  cpuidle driver: {f['cpuidle_driver'] or 'none'}")
    print(f"\nTransparent huge pages: enabled={t['thp']['enabled']} defrag={t['thp']['defrag']}")
    b = t["balloon"]
    if b is None:
        print("virtio balloon: none")
    else:
        print(f"virtio balloon: {b['device']}, free page reporting "
              + ("ON (page-cache pages from reported memory cost a host fault each; "
                 "consider log.drop.behind.bytes for tailing workloads)" if b["free_page_reporting"] else "off"))
    print(f"irqbalance running: {'yes (it will move IRQs back; stop it before irq-affinity.sh --apply)' if t['irqbalance_running'] else 'no'}")
    print("\nSysctls")
    table(["key", "value"], [[k, v if v is not None else "(absent)"] for k, v in t["sysctls"].items()])


def main(argv):
    if "-h" in argv or "--help" in argv:
        print(__doc__.strip())
        return 0
    unknown = [a for a in argv if a not in ("--json", "--suggest")]
    if unknown:
        print(f"topology.py: unknown argument {unknown[0]} (see --help)", file=sys.stderr)
        return 2
    t = collect()
    if "--json" in argv:
        json.dump(t, sys.stdout, indent=2)
        print()
    else:
        human(t)
        if "--suggest" in argv:
            suggest(t)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
