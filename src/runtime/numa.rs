//! Shard placement: which CPUs the shards run on (`cpuset`, `cores`, `pin.shards`) and where their
//! memory comes from (`numa.membind`).
//!
//! - `cpuset` is a Linux CPU list (`0,2-3`). Shard *i* is pinned to the *i*-th CPU of the list, in
//!   the order written (`3,1` puts shard 0 on CPU 3). Every CPU must be in the process's affinity
//!   mask (`sched_getaffinity`, what `taskset`/systemd `CPUAffinity=` set), otherwise the broker
//!   refuses to start and names the CPU. `cores` defaults to the list's length and may be smaller
//!   (the first `cores` CPUs are used), never larger: with a cpuset every shard owns its CPU.
//! - Without a cpuset the shards take the usable CPUs in order (`cores` of them; more shards than
//!   CPUs wrap around, as before).
//! - Memory: glommio's `Placement::Fixed` pins the thread only. Each pinned shard thread therefore
//!   asks the kernel, as its first action, to prefer its CPU's NUMA node for its allocations
//!   (`set_mempolicy(MPOL_PREFERRED, {node})`, a per-thread policy). "Preferred", not "bind": if
//!   the node runs out the kernel falls back to another node instead of OOM-killing the broker.
//!   Memory glommio allocated while building the executor (before our code runs) is not covered;
//!   first-touch already puts most of it on the local node because the thread is pinned by then.
//!   On a one-node machine the call is a no-op, but it is made (and logged) all the same.

use std::io;

/// Parses a Linux CPU list such as `0,2-3` into CPU ids in the order written. Empty (or blank)
/// text means "no cpuset". Rejects empty items, reversed ranges, duplicates and absurd ids.
pub fn parse_cpuset(text: &str) -> Result<Vec<usize>, String> {
    const MAX_CPU: usize = 8191; // the kernel's largest NR_CPUS
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let num = |s: &str| -> Result<usize, String> {
        let s = s.trim();
        let n: usize = s
            .parse()
            .map_err(|_| format!("`{s}` is not a CPU number (expected a list like `0,2-3`)"))?;
        if n > MAX_CPU {
            return Err(format!("CPU {n} is out of range (max {MAX_CPU})"));
        }
        Ok(n)
    };
    let mut out: Vec<usize> = Vec::new();
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!(
                "empty item in `{text}` (expected a list like `0,2-3`)"
            ));
        }
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("range `{item}` is reversed"));
        }
        for cpu in lo..=hi {
            if out.contains(&cpu) {
                return Err(format!("CPU {cpu} is listed twice"));
            }
            out.push(cpu);
        }
    }
    Ok(out)
}

/// Formats CPU ids as a compact list (`0-3,6`), for messages.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Decides the shard count and the CPU of each shard. `cores` is the `cores` setting (0 = default),
/// `cpuset` the parsed `cpuset` setting (empty = none), `usable` the process's affinity mask.
/// Returns (shards, cpus) where shard i runs on `cpus[i % cpus.len()]`.
pub fn plan_shards(
    cores: usize,
    cpuset: &[usize],
    usable: &[usize],
) -> Result<(usize, Vec<usize>), String> {
    if cpuset.is_empty() {
        let shards = if cores > 0 {
            cores
        } else {
            usable.len().max(1)
        };
        return Ok((shards, usable.to_vec()));
    }
    // When the mask cannot be read (non-Linux), trust the operator.
    if !usable.is_empty() {
        if let Some(cpu) = cpuset.iter().find(|c| !usable.contains(c)) {
            return Err(format!(
                "cpuset: CPU {cpu} is not in this process's CPU affinity mask (usable CPUs: {})",
                format_cpus(usable)
            ));
        }
    }
    let shards = if cores > 0 { cores } else { cpuset.len() };
    if shards > cpuset.len() {
        return Err(format!(
            "cores = {shards} but cpuset `{}` has only {} CPU(s); with a cpuset each shard gets its own CPU",
            format_cpus(cpuset),
            cpuset.len()
        ));
    }
    Ok((shards, cpuset[..shards].to_vec()))
}

/// The NUMA node of a CPU, from `/sys/devices/system/cpu/cpuN/nodeM`; None if the kernel has no
/// NUMA support or the CPU does not exist.
pub fn cpu_node(cpu: usize) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{cpu}")).ok()?;
    dir.filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("node"))
                .and_then(|n| n.parse().ok())
        })
        .next()
}

/// Number of NUMA nodes with CPUs or memory (1 when unknown).
pub fn online_nodes() -> usize {
    std::fs::read_to_string("/sys/devices/system/node/online")
        .ok()
        .and_then(|s| parse_cpuset(&s).ok())
        .map_or(1, |v| v.len().max(1))
}

const MPOL_PREFERRED: nix::libc::c_int = 1;

/// Sets the calling thread's memory policy to "prefer `node`" (`set_mempolicy(MPOL_PREFERRED)`).
pub fn prefer_node(node: usize) -> io::Result<()> {
    const BITS: usize = nix::libc::c_ulong::BITS as usize;
    let mut mask = vec![0 as nix::libc::c_ulong; node / BITS + 1];
    mask[node / BITS] |= 1 << (node % BITS);
    // The kernel reads maxnode - 1 bits (a long-standing off-by-one numactl also compensates for).
    let maxnode = (mask.len() * BITS + 1) as nix::libc::c_ulong;
    // SAFETY: set_mempolicy only reads `maxnode - 1` bits from `mask`, which holds that many.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_set_mempolicy,
            MPOL_PREFERRED,
            mask.as_ptr(),
            maxnode,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Best effort: makes the calling (shard) thread prefer memory from `cpu`'s node, and logs what
/// happened. Never fails the shard.
pub fn prefer_local_memory(shard: usize, cpu: usize) {
    match cpu_node(cpu) {
        None => tracing::info!(
            "shard {shard}: numa.membind: CPU {cpu} has no NUMA node in /sys; memory policy unchanged"
        ),
        Some(node) => match prefer_node(node) {
            Ok(()) => tracing::info!(
                "shard {shard}: numa.membind: CPU {cpu} is on node {node}; memory policy set to prefer node {node} ({} node(s) online{})",
                online_nodes(),
                if online_nodes() == 1 { ", so this changes nothing here" } else { "" }
            ),
            Err(e) => tracing::warn!(
                "shard {shard}: numa.membind: set_mempolicy(MPOL_PREFERRED, node {node}) failed: {e}; continuing with the default policy"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_lists_parse_in_order() {
        assert_eq!(parse_cpuset("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpuset("  ").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cpuset("0").unwrap(), vec![0]);
        assert_eq!(parse_cpuset("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cpuset(" 4-5 , 1 ").unwrap(), vec![4, 5, 1]);
        assert_eq!(parse_cpuset("7-7").unwrap(), vec![7]);
        assert_eq!(parse_cpuset("0-1\n").unwrap(), vec![0, 1]);
    }

    #[test]
    fn bad_cpusets_are_rejected_with_a_reason() {
        for (text, needle) in [
            ("a", "not a CPU number"),
            ("0,", "empty item"),
            (",1", "empty item"),
            ("0,,1", "empty item"),
            ("3-1", "reversed"),
            ("0-2,1", "listed twice"),
            ("1,1", "listed twice"),
            ("-1", "not a CPU number"),
            ("0-", "not a CPU number"),
            ("99999", "out of range"),
            ("1-2-3", "not a CPU number"),
        ] {
            let e = parse_cpuset(text).unwrap_err();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn cpus_format_compactly() {
        assert_eq!(format_cpus(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(format_cpus(&[3, 1]), "3,1");
        assert_eq!(format_cpus(&[]), "");
    }

    #[test]
    fn plans_follow_cpuset_cores_and_mask() {
        let usable = [0, 1, 2, 3];
        // No cpuset: every usable CPU, or `cores` shards wrapping over them.
        assert_eq!(plan_shards(0, &[], &usable).unwrap(), (4, vec![0, 1, 2, 3]));
        assert_eq!(plan_shards(6, &[], &usable).unwrap().0, 6);
        // cpuset: shard i on the i-th CPU; cores defaults to its size, may be smaller.
        assert_eq!(
            plan_shards(0, &[0, 2, 3], &usable).unwrap(),
            (3, vec![0, 2, 3])
        );
        assert_eq!(
            plan_shards(2, &[3, 1, 2], &usable).unwrap(),
            (2, vec![3, 1])
        );
        let e = plan_shards(4, &[0, 2, 3], &usable).unwrap_err();
        assert!(e.contains("cores = 4"), "{e}");
        // A CPU outside the affinity mask is named.
        let e = plan_shards(0, &[1, 5], &usable).unwrap_err();
        assert!(e.contains("CPU 5") && e.contains("0-3"), "{e}");
    }

    #[test]
    fn preferring_the_local_node_works_on_this_machine() {
        // Per-thread policy: do it on a scratch thread so the test thread is unaffected.
        std::thread::spawn(|| {
            let node = cpu_node(0).unwrap_or(0);
            match prefer_node(node) {
                Ok(()) => {}
                // A seccomp profile (e.g. Docker's default without CAP_SYS_NICE) or a kernel
                // without NUMA may refuse; the broker then only logs a warning.
                Err(e)
                    if matches!(e.raw_os_error(), Some(nix::libc::EPERM | nix::libc::ENOSYS)) =>
                {
                    eprintln!("set_mempolicy refused here: {e}");
                }
                Err(e) => panic!("set_mempolicy(MPOL_PREFERRED, node {node}): {e}"),
            }
            prefer_local_memory(0, 0);
        })
        .join()
        .unwrap();
    }
}
