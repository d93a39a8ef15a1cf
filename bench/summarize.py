#!/usr/bin/env python3
"""Writes summary.md for a bench/run.sh results directory: machine ceilings, shardlog vs Kafka
side by side with their ratio, Kafka's own perf tools against both, --cores 1 vs 2, and the
issue 5 targets with met / not met.

    python3 bench/summarize.py bench/results/<date>
"""
import csv
import json
import os
import re
import sys

D = sys.argv[1]
BROKERS = ("shardlog", "kafka")


def path(name):
    return os.path.join(D, name)


def read(name):
    try:
        with open(path(name)) as f:
            return f.read()
    except OSError:
        return None


def load_json(name):
    text = read(name)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


meta = {}
for line in (read("meta.env") or "").splitlines():
    if "=" in line:
        k, v = line.split("=", 1)
        meta[k] = v


def get(obj, *keys):
    for k in keys:
        if obj is None:
            return None
        obj = obj.get(k) if isinstance(obj, dict) else None
    return obj


def run(broker, name):
    return load_json(f"{broker}-{name}.json")


def fmt(v, digits=None):
    if v is None:
        return "n/a"
    if digits is None:
        digits = 0 if abs(v) >= 1000 else (1 if abs(v) >= 100 else (2 if abs(v) >= 1 else 3))
    return f"{v:,.{digits}f}"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.{digits}f}x"


# ---- ceilings ---------------------------------------------------------------------------------
def dd_rate(name):
    text = read(name)
    if not text:
        return None
    m = re.search(r"(\d+) bytes .* copied, ([0-9.,]+) s", text)
    if not m:
        return None
    secs = float(m.group(2).replace(",", "."))
    return int(m.group(1)) / secs / 1e6 if secs > 0 else None


direct_mb = dd_rate("ceiling-dd-direct.txt")
fio = load_json("ceiling-fio-fdatasync.json")
sync_mb = sync_iops = sync_p99 = None
sync_tool = None
if fio and fio.get("jobs"):
    w = fio["jobs"][0]["write"]
    sync_mb = w["bw_bytes"] / 1e6
    sync_iops = w["iops"]
    p = get(fio["jobs"][0], "sync", "lat_ns", "percentile") or {}
    v = p.get("99.000000")
    sync_p99 = v / 1e6 if v else None
    sync_tool = "fio: 64 KiB write + fdatasync, appending"
else:
    sync_mb = dd_rate("ceiling-dd-dsync.txt")
    if sync_mb:
        sync_iops = sync_mb * 1e6 / 65536
        sync_tool = "dd bs=64k oflag=dsync"
def iperf_gbit(name):
    bps = get(load_json(name), "end", "sum_received", "bits_per_second")
    return bps / 1e9 if bps else None


tcp_gbit = iperf_gbit("ceiling-iperf3.json")
tcp2_gbit = iperf_gbit("ceiling-iperf3-P2-zerocopy.json")

# ---- perf tools ---------------------------------------------------------------------------------
PROD_RE = re.compile(
    r"(\d+) records sent, ([0-9.]+) records/sec \(([0-9.]+) MB/sec\), ([0-9.]+) ms avg latency, "
    r"([0-9.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def perf_producer(broker):
    text = read(f"{broker}-perf-producer.txt") or ""
    ms = PROD_RE.findall(text)
    if not ms:
        return None
    m = ms[-1]
    return dict(records=int(m[0]), rps=float(m[1]), mib=float(m[2]), avg=float(m[3]),
                max=float(m[4]), p50=float(m[5]), p95=float(m[6]), p99=float(m[7]),
                p999=float(m[8]))


def perf_consumer(broker):
    text = read(f"{broker}-perf-consumer.txt") or ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("start.time") and i + 1 < len(lines):
            f = [x.strip() for x in lines[i + 1].split(",")]
            try:
                return dict(mib=float(f[2]), mib_s=float(f[3]), n=int(f[4]), n_s=float(f[5]),
                            rebalance_ms=float(f[6]), fetch_ms=float(f[7]),
                            fetch_mib_s=float(f[8]), fetch_n_s=float(f[9]))
            except (IndexError, ValueError):
                return None
    return None


# ---- numbers ------------------------------------------------------------------------------------
N = {}
for b in BROKERS + ("shardlog-cores1", "shardlog-copy", "shardlog-dropbehind"):
    N[b] = dict(
        produce=run(b, "produce"), consume=run(b, "consume"),
        lat1=run(b, "latency-acks1"), latall=run(b, "latency-acksall"),
        all=run(b, "produce-acksall"), allflush=run(b, "produce-acksall-flush"),
        rk=run(b, "produce-rdkafka"), big=run(b, "produce-big"),
        pp=perf_producer(b), pc=perf_consumer(b))


def v(b, run_name, *keys):
    return get(N[b][run_name], *keys)


load1 = None
try:
    load1 = float(meta.get("loadavg_before", "").split()[0])
    load1_after = float(meta.get("loadavg_after", "").split()[0])
except (ValueError, IndexError):
    load1_after = None
busy = (load1 is not None and load1 > 2) or (load1_after is not None and load1_after > 2)

out = []
w = out.append
w(f"# shardlog vs Apache Kafka, {meta.get('date_utc', '?')}")
w("")
if busy:
    w(f"> **The machine was busy: load average {meta.get('loadavg_before', '?').split(' ')[0]} "
      f"before and {meta.get('loadavg_after', '?').split(' ')[0]} after the run (> 2 on "
      f"{meta.get('cpus', '?')} CPUs; other sessions compiling or testing). Absolute numbers are "
      "depressed and noisy; compare the shardlog/Kafka ratios (both brokers ran in the same "
      "conditions, one after the other), and treat even those as indicative.**")
    w("")
w(f"Command: `{meta.get('command', 'bench/run.sh').strip()}` "
  f"(measurement {meta.get('measure_secs', '?')} s, total {meta.get('total_secs', '?')} s with the build).")
w("")
w(f"- commit: {meta.get('commit', '?')}" + (f" — {meta['build_note']}" if meta.get("build_note") else ""))
w(f"- machine: {meta.get('cpus')} CPUs ({meta.get('cpu_model')}), {meta.get('mem_total')}, kernel {meta.get('kernel')}; "
  f"data dirs on {meta.get('data_fs')} ({meta.get('bench_dir')})")
w(f"- /proc/loadavg before: `{meta.get('loadavg_before')}`; after: `{meta.get('loadavg_after')}`")
w(f"- Kafka: {meta.get('kafka_jar', '?').replace('.jar', '')}, KRaft single node (scripts/kafka.sh), "
  f"heap -Xmx{meta.get('kafka_heap')}, {meta.get('java')}; shardlog: release build, `--cores 2` "
  f"(and `--cores 1` for (d)); each broker alone on the machine while measured, fresh data dir")
w(f"- load generator (`shardlog-bench`, same settings for both): {meta.get('record_size')}-byte records, "
  f"{meta.get('batch')} records per batch (one batch per Produce request), {meta.get('partitions')} partitions, "
  f"{meta.get('producers')} producer connections x {meta.get('pipeline')} in flight (closed loop) or "
  f"x {meta.get('lat_pipeline')} (fixed rate), {meta.get('consumers')} catch-up consumer connections; "
  f"{meta.get('warmup')} s warm-up + {meta.get('duration')} s measured per point; each broker first gets "
  f"{meta.get('broker_warmup')} s of unmeasured produce load (JIT warm-up for Kafka; the same for shardlog)")
w("")

w("## Machine ceilings (same disk as the data dirs)")
w("")
w("| ceiling | value |")
w("|---|---:|")
w(f"| sequential write, O_DIRECT, 1 MiB writes (dd) | {fmt(direct_mb)} MB/s |")
w(f"| sequential write, fdatasync per 64 KiB ({sync_tool or 'n/a'}) | {fmt(sync_mb)} MB/s = {fmt(sync_iops)} syncs/s"
  + (f", fdatasync p99 {fmt(sync_p99)} ms" if sync_p99 else "") + " |")
w(f"| loopback TCP, one stream (iperf3) | {fmt(tcp_gbit)} Gbit/s = {fmt(tcp_gbit * 125 if tcp_gbit else None)} MB/s |")
w(f"| loopback TCP, two streams, sender uses sendfile (iperf3 -P 2 -Z) | {fmt(tcp2_gbit)} Gbit/s = {fmt(tcp2_gbit * 125 if tcp2_gbit else None)} MB/s |")
w("")

rate = meta.get("latency_rate", "?")
w("## shardlog vs Kafka (same load generator, same settings)")
w("")
w("MB/s = record-batch bytes / 10^6 per second (what the broker stores). Latencies in ms, "
  "from each request's intended send time (coordinated-omission corrected). Ratio = shardlog / Kafka "
  "(throughput: higher is better for shardlog; latency: lower is better).")
w("")
w("| measurement | shardlog | Kafka | shardlog / Kafka |")
w("|---|---:|---:|---:|")


def row(label, s, k, digits=None):
    w(f"| {label} | {fmt(s, digits)} | {fmt(k, digits)} | {ratio(s, k)} |")


for label, rn, side in (("(a) produce acks=1, closed loop", "produce", "produce"),
                        ("(b) catch-up consume", "consume", "consume")):
    row(f"{label}: MB/s", v("shardlog", rn, side, "mb_per_sec"), v("kafka", rn, side, "mb_per_sec"))
    row(f"{label}: msg/s", v("shardlog", rn, side, "msgs_per_sec"), v("kafka", rn, side, "msgs_per_sec"))
for acks, rn in (("1", "lat1"), ("-1", "latall")):
    row(f"(c) acks={acks} at {rate} msg/s: achieved msg/s", v("shardlog", rn, "produce", "msgs_per_sec"),
        v("kafka", rn, "produce", "msgs_per_sec"))
    for p, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p99_9_ms"), ("max", "max_ms")):
        row(f"(c) acks={acks} at {rate} msg/s: {p} ms", v("shardlog", rn, "produce", "latency", key),
            v("kafka", rn, "produce", "latency", key), 3)
row("(e) acks=-1 closed loop: MB/s (Kafka default: no fsync)", v("shardlog", "all", "produce", "mb_per_sec"),
    v("kafka", "all", "produce", "mb_per_sec"))
row("(e) acks=-1 closed loop: MB/s vs Kafka with flush.messages=1 (fsync per append)",
    v("shardlog", "all", "produce", "mb_per_sec"), v("kafka", "allflush", "produce", "mb_per_sec"))
row("(e) acks=-1 closed loop: p99 ms (vs Kafka default)", v("shardlog", "all", "produce", "latency", "p99_ms"),
    v("kafka", "all", "produce", "latency", "p99_ms"), 3)
rkp = meta.get("rk_producers", "?")
row(f"(g) produce acks=1 through librdkafka ({rkp} producers, its default batching): MB/s",
    v("shardlog", "rk", "produce", "mb_per_sec"), v("kafka", "rk", "produce", "mb_per_sec"))
row("(g) produce acks=1 through librdkafka: msg/s",
    v("shardlog", "rk", "produce", "msgs_per_sec"), v("kafka", "rk", "produce", "msgs_per_sec"))
bigb = meta.get("big_batch", "256")
row(f"(i) produce acks=1, closed loop, {bigb}-record batches: MB/s",
    v("shardlog", "big", "produce", "mb_per_sec"), v("kafka", "big", "produce", "mb_per_sec"))
w("")
errs = []
for b in BROKERS + ("shardlog-cores1",):
    for rn, r in N[b].items():
        if isinstance(r, dict) and "label" in r:
            for side in ("produce", "consume"):
                e = get(r, side, "errors")
                if e:
                    errs.append(f"{b} {rn} {side}: {e} errors ({'; '.join(get(r, side, 'first_errors') or [])})")
if errs:
    w("Errors reported by the load generator: " + " / ".join(errs))
    w("")

w("## Kafka's own tools against both (`kafka-producer-perf-test` / `kafka-consumer-perf-test`)")
w("")
w(f"`org.apache.kafka.tools.ProducerPerformance --num-records {meta.get('perf_records')} --record-size "
  f"{meta.get('record_size')} --throughput -1 acks=1` (Java producer defaults otherwise: batch.size 16384, "
  f"linger.ms 5), then `ConsumerPerformance --num-records {meta.get('perf_records')}` on the same fresh "
  f"{meta.get('partitions')}-partition topic. MiB = 2^20 bytes of record values, as the tools print "
  "them. The producer's latencies are from send() to ack under closed-loop overload, i.e. mostly time "
  "queued in the client.")
w("")
w("| measurement | shardlog | Kafka | shardlog / Kafka |")
w("|---|---:|---:|---:|")
sp, kp = N["shardlog"]["pp"] or {}, N["kafka"]["pp"] or {}
row("ProducerPerformance: records/s", sp.get("rps"), kp.get("rps"))
row("ProducerPerformance: MiB/s", sp.get("mib"), kp.get("mib"))
for key, lab in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"), ("max", "max")):
    row(f"ProducerPerformance: {lab} ms", sp.get(key), kp.get(key), 0)
sc, kc = N["shardlog"]["pc"] or {}, N["kafka"]["pc"] or {}
row("ConsumerPerformance: MiB/s (whole run, group join included)", sc.get("mib_s"), kc.get("mib_s"))
row("ConsumerPerformance: fetch MiB/s (after the group join)", sc.get("fetch_mib_s"), kc.get("fetch_mib_s"))
row("ConsumerPerformance: group join (rebalance) ms", sc.get("rebalance_ms"), kc.get("rebalance_ms"), 0)
w("")

c1 = v("shardlog-cores1", "produce", "produce", "mb_per_sec")
c2 = v("shardlog", "produce", "produce", "mb_per_sec")
w("## (d) shard scaling: shardlog `--cores 1` vs `--cores 2`, (a) produce acks=1 closed loop")
w("")
w("| cores | MB/s | msg/s |")
w("|---:|---:|---:|")
w(f"| 1 | {fmt(c1)} | {fmt(v('shardlog-cores1', 'produce', 'produce', 'msgs_per_sec'))} |")
w(f"| 2 | {fmt(c2)} | {fmt(v('shardlog', 'produce', 'produce', 'msgs_per_sec'))} |")
w(f"| ratio 2/1 | {ratio(c2, c1)} | |")
w("")
w("Broker and load generator share the machine's CPUs, so --cores 2 leaves the load generator less room.")
w("")

zc = v("shardlog", "consume", "consume", "mb_per_sec")
cp = v("shardlog-copy", "consume", "consume", "mb_per_sec")
w("## (f) fetch path: zero-copy (default, sendfile) vs copy (`fetch.zero.copy=false`: pread + writev), (b) catch-up consume")
w("")
w("| fetch path | consume MB/s | broker CPU s (consume phase) | produce (a) MB/s |")
w("|---|---:|---:|---:|")


def phase_cpu(broker, phase):
    for line in (read("phases.csv") or "").splitlines()[1:]:
        f = line.split(",")
        if len(f) > 3 and f[0] == broker and f[1] == phase:
            return f[3]
    return None


w(f"| zero-copy (sendfile, default) | {fmt(zc)} | {phase_cpu('shardlog', 'consume') or '-'} | {fmt(v('shardlog', 'produce', 'produce', 'mb_per_sec'))} |")
w(f"| copy (pread + writev) | {fmt(cp)} | {phase_cpu('shardlog-copy', 'consume') or '-'} | {fmt(v('shardlog-copy', 'produce', 'produce', 'mb_per_sec'))} |")
w(f"| ratio zero-copy / copy | {ratio(zc, cp)} | | |")
w("")

# (h) drop-behind: not the default; shows what recycling page-cache memory buys and costs.
db = "shardlog-dropbehind"
w("## (h) drop-behind (`log.drop.behind.bytes=33554432`, not the default) vs the default (keep everything cached)")
w("")
w("| | shardlog default | shardlog drop-behind | ratio | Kafka |")
w("|---|---:|---:|---:|---:|")
for label, rn in (("(a) produce MB/s", "produce"), ("(b) catch-up consume MB/s", "consume"),
                  ("(g) produce through librdkafka MB/s", "rk"),
                  ("(i) produce, big batches, MB/s", "big")):
    side = "consume" if rn == "consume" else "produce"
    a, d = v("shardlog", rn, side, "mb_per_sec"), v(db, rn, side, "mb_per_sec")
    w(f"| {label} | {fmt(a)} | {fmt(d)} | {ratio(d, a)} | {fmt(v('kafka', rn, side, 'mb_per_sec'))} |")
w("")
w("On a VM whose balloon device reports free pages to the host, every page-cache page allocated from")
w("reported memory costs a host page fault; dropping written-back pages recycles a small set of")
w("pages instead (docs/PERFORMANCE.md, \"drop-behind\"). Catch-up reads of dropped data go to the disk.")
w("")

# ---- targets --------------------------------------------------------------------------------------
w("## Issue 5 targets")
w("")
w("| target | measured | met? |")
w("|---|---:|:---:|")


def target(label, value_text, ok):
    w(f"| {label} | {value_text} | {'n/a' if ok is None else ('**yes**' if ok else 'no')} |")


def cmp(a, b, op):
    if a is None or b is None or b == 0:
        return None
    return op(a, b)


sk = lambda rn, side, *k: (v("shardlog", rn, side, *k), v("kafka", rn, side, *k))  # noqa: E731
s, k = sk("produce", "produce", "mb_per_sec")
target("produce throughput ≥ 2x Kafka (acks=1, 1 KiB, 8 partitions)", ratio(s, k), cmp(s, k, lambda a, b: a / b >= 2))
s, k = sk("consume", "consume", "mb_per_sec")
target("catch-up consume ≥ 2x Kafka", ratio(s, k), cmp(s, k, lambda a, b: a / b >= 2))
for acks, rn in (("1", "lat1"), ("-1", "latall")):
    for p, key in (("p99", "p99_ms"), ("p99.9", "p99_9_ms")):
        s, k = sk(rn, "produce", "latency", key)
        target(f"{p} at half Kafka's max (acks={acks}) ≤ 1/5 of Kafka's", f"{fmt(s, 3)} vs {fmt(k, 3)} ms = {ratio(s, k)}",
               cmp(s, k, lambda a, b: a / b <= 0.2))
s, k = sk("rk", "produce", "mb_per_sec")
target("the same through librdkafka (g), its default batching", ratio(s, k), cmp(s, k, lambda a, b: a / b >= 2))
s = v("shardlog", "produce", "produce", "mb_per_sec")
target("produce ≥ 1 GB/s (absolute), (a) defaults", f"{fmt(s)} MB/s", None if s is None else s >= 1000)
s = v("shardlog", "big", "produce", "mb_per_sec")
target(f"produce ≥ 1 GB/s, (i) {bigb}-record batches, defaults", f"{fmt(s)} MB/s", None if s is None else s >= 1000)
s = v("shardlog-dropbehind", "big", "produce", "mb_per_sec")
target(f"produce ≥ 1 GB/s, (i) {bigb}-record batches, log.drop.behind.bytes=32 MiB (h)", f"{fmt(s)} MB/s",
       None if s is None else s >= 1000)
s = v("shardlog", "consume", "consume", "mb_per_sec")
target("consume ≥ 1.5 GB/s (absolute)", f"{fmt(s)} MB/s", None if s is None else s >= 1500)
s = v("shardlog", "all", "produce", "mb_per_sec")
target("acks=-1 (fsync) produce ≥ 50% of the fdatasync ceiling",
       f"{fmt(s)} MB/s vs {fmt(sync_mb)} MB/s = {ratio(s, sync_mb)}", cmp(s, sync_mb, lambda a, b: a / b >= 0.5))
s = v("shardlog", "lat1", "produce", "latency", "p99_ms")
target("p99 ≤ 1 ms at half load, acks=1", f"{fmt(s, 3)} ms", None if s is None else s <= 1)
s = v("shardlog", "latall", "produce", "latency", "p99_ms")
target("p99 ≤ 3 ms at half load, acks=-1", f"{fmt(s, 3)} ms", None if s is None else s <= 3)
target("`--cores 1` vs `--cores 2` ratio reported", ratio(c2, c1), None if c1 is None or c2 is None else True)
w("")
if busy:
    w("The absolute targets were judged on a busy machine (see the top); they need a quiet rerun to be judged fairly.")
    w("")

# ---- phases -------------------------------------------------------------------------------------------
try:
    with open(path("phases.csv")) as f:
        phases = list(csv.DictReader(f))
except OSError:
    phases = []
if phases:
    w("## Broker CPU per phase")
    w("")
    w("Per phase: wall seconds (tool start-up included), CPU seconds (user+system) of the broker "
      "process (/proc/PID/stat) and of the whole machine (/proc/stat); *rest* = machine busy − broker "
      "= the load generator (or Kafka's Java tools) plus everything else on the machine; *idle* = idle + "
      "iowait CPU seconds; *steal* = taken by the hypervisor; and the 1-minute load average before/after "
      "(which includes this run's own broker and load generator).")
    w("")
    w("| broker | phase | wall s | broker CPU s | rest CPU s | idle CPU s | steal s | load before | load after |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for p in phases:
        try:
            rest = f"{float(p['machine_busy_cpu_s']) - float(p['broker_cpu_s']):.2f}"
        except (KeyError, ValueError, TypeError):
            rest = "n/a"
        w(f"| {p['broker']} | {p['phase']} | {p['wall_s']} | {p['broker_cpu_s']} | {rest} | "
          f"{p.get('machine_idle_cpu_s', 'n/a')} | {p.get('steal_cpu_s', 'n/a')} | "
          f"{p['loadavg_1m_before']} | {p['loadavg_1m_after']} |")
    w("")
fails = read("failures.csv")
if fails:
    w("## Failures")
    w("")
    w("`broker,phase,exit status` (see that phase's .txt file):")
    w("")
    w("```")
    w(fails.strip())
    w("```")
    w("")

w("## Notes")
w("")
w("- Kafka's acks=-1 on a single node does not fsync before acknowledging (durability comes from "
  "replication; flush.messages is unset); shardlog's acks=-1 does fdatasync before acknowledging. "
  "The (c) acks=-1 latency and (e) default rows therefore compare unlike work; (e) with "
  "`flush.messages=1` is the like-for-like durable row.")
w("- The load generator and the broker share the CPUs; the load generator's own cost is in bench/README.md.")
w("- Catch-up consume reads what (a) wrote (warm-up included), mostly from the page cache for both brokers.")
w("- Files: `<broker>-<run>.json|.txt` (load generator), `all.csv` (every run, one row each), "
  "`*-latency-acks*-produce.hgrm` (latency distributions), `*-perf-*.txt` (Kafka tools), "
  "`ceiling-*` (ceilings), `phases.csv`, `meta.env`.")

with open(path("summary.md"), "w") as f:
    f.write("\n".join(out) + "\n")
