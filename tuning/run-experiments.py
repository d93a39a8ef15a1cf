#!/usr/bin/env python3
"""Run the shardlog-bench matrix over a grid of broker settings and write a results table + plot.

Grid (default; about 7 minutes on the 2-CPU development VM):
  cores                 1, 2                    (--cores-grid)
  pin.shards            on, off                 (--pin-grid)
  spin.before.park.us   0, 200                  (--spin-grid)
  producer batch size   1, 10, 100 records      (--batch-grid)
io_uring SQ polling is NOT a grid axis: glommio 0.9 creates its rings without IORING_SETUP_SQPOLL
and shardlog exposes no switch for it, so there is nothing honest to vary (see tuning/README.md).

Each point: a fresh broker (`target/release/shardlog start --cores C --set pin.shards=.. --set
spin.before.park.us=..`) on a free loopback port with a fresh data dir; `shardlog-bench` produce
(acks=1, 1 KiB records, 8 partitions, 4 connections x 5 in flight, closed loop, --warmup s then
--duration s measured); a catch-up consume of everything written (2 connections); broker stopped
with SIGTERM and its data dir deleted. Recorded per point: produce msg/s and MB/s, produce latency
percentiles, consume msg/s and MB/s, broker CPU time during the produce phase, and each shard
thread's CPU affinity as the kernel reports it (so "pinned" is verified, not assumed).

Usage:
  tuning/run-experiments.py                # full grid, writes tuning/results/<date>/
  tuning/run-experiments.py --quick        # 2 points, 3 s each: a smoke test of the whole pipeline
  tuning/run-experiments.py --help

Outputs (in --out, default tuning/results/<YYYY-MM-DD>/): results.csv, results.md, results.png,
raw/<point>-{produce,consume}.json (the load generator's own JSON), raw/<point>-broker.log.
The plot is drawn by tuning/plot.py with matplotlib; if this python lacks it, a venv is created at
.venv-tuning/ (gitignored) and matplotlib installed there with pip.
"""
import argparse
import csv
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKER = os.path.join(ROOT, "target/release/shardlog")
BENCH = os.path.join(ROOT, "target/release/shardlog-bench")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[run-experiments {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def int_list(text):
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run the shardlog-bench matrix over a grid of broker settings.",
        epilog="See tuning/README.md for how to read the results.",
    )
    p.add_argument("--quick", action="store_true", help="tiny grid (cores 2, pin on/off, spin 0, batch 10; 1 s + 3 s)")
    p.add_argument("--cores-grid", default="1,2", help="shard counts (default 1,2)")
    p.add_argument("--pin-grid", default="on,off", help="pin.shards values: on,off (default both)")
    p.add_argument("--spin-grid", default="0,200", help="spin.before.park.us values (default 0,200)")
    p.add_argument("--batch-grid", default="1,10,100", help="records per produce batch (default 1,10,100)")
    p.add_argument("--duration", type=float, default=8.0, help="measured produce seconds per point (default 8)")
    p.add_argument("--warmup", type=float, default=2.0, help="produce warm-up seconds per point (default 2)")
    p.add_argument("--producers", type=int, default=4, help="producer connections (default 4)")
    p.add_argument("--pipeline", type=int, default=5, help="produce requests in flight per connection (default 5)")
    p.add_argument("--consumers", type=int, default=2, help="catch-up consumer connections (default 2)")
    p.add_argument("--partitions", type=int, default=8, help="topic partitions (default 8)")
    p.add_argument("--record-size", type=int, default=1024, help="record value bytes (default 1024)")
    p.add_argument("--out", help="output directory (default tuning/results/<date>)")
    p.add_argument("--no-build", action="store_true", help="use the existing target/release binaries")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    a = p.parse_args(argv)
    if a.quick:
        a.cores_grid, a.pin_grid, a.spin_grid, a.batch_grid = "2", "on,off", "0", "10"
        a.duration, a.warmup = 3.0, 1.0
    a.cores = int_list(a.cores_grid)
    a.pins = [x.strip() for x in a.pin_grid.split(",") if x.strip()]
    if any(x not in ("on", "off") for x in a.pins):
        p.error("--pin-grid takes on and/or off")
    a.spins = int_list(a.spin_grid)
    a.batches = int_list(a.batch_grid)
    return a


def build():
    cmd = ["cargo", "build", "--release", "--bin", "shardlog", "--bin", "shardlog-bench"]
    for attempt in range(1, 4):
        log(f"building release binaries (attempt {attempt})")
        r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode == 0:
            return
        tail = "\n".join(r.stderr.strip().splitlines()[-5:])
        log(f"build failed (the tree may be mid-edit):\n{tail}")
        time.sleep(30)
    if os.path.exists(BROKER) and os.path.exists(BENCH):
        log("WARNING: build failed 3 times; using the existing target/release binaries")
    else:
        sys.exit("run-experiments: no release binaries and the build fails")


def check_broker_supports_settings():
    out = subprocess.run([BROKER, "config", "list"], capture_output=True, text=True).stdout
    for key in ("pin.shards", "spin.before.park.us", "cpuset"):
        if key not in out:
            sys.exit(f"run-experiments: {BROKER} has no `{key}` setting: rebuild it (drop --no-build)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().strip()


def proc_cpu_secs(pid):
    """utime + stime of a process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def shard_affinity(pid):
    """'shard-N' thread -> Cpus_allowed_list, from /proc (glommio names threads after the executor)."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                if not comm.startswith("shard-"):
                    continue
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("Cpus_allowed_list:"):
                            out.setdefault(comm, line.split(":", 1)[1].strip())
            except OSError:
                pass
    except OSError:
        pass
    return out


class Broker:
    def __init__(self, cores, pin, spin, data_dir, log_path):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        args = [
            BROKER, "start", "--cores", str(cores), "--data-dir", data_dir, "--listen", self.addr,
            "--set", f"pin.shards={'true' if pin == 'on' else 'false'}",
            "--set", f"spin.before.park.us={spin}",
        ]
        self.cmdline = " ".join(args[1:])
        self.logf = open(log_path, "w")
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}; see {self.log_path}")
            with open(self.log_path) as f:
                if "ready: accepting" in f.read():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"broker not ready after {timeout}s; see {self.log_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                log("broker ignored SIGTERM for 20 s; killing it")
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


def bench(args, json_path, timeout):
    cmd = [BENCH, *args, "--json", json_path, "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if not os.path.exists(json_path):
        raise RuntimeError(f"shardlog-bench exited {r.returncode} without JSON: {r.stderr.strip()[-400:]}")
    with open(json_path) as f:
        data = json.load(f)
    data["_exit"] = r.returncode
    return data


def run_point(a, n, cores, pin, spin, batch, raw_dir, scratch):
    name = f"p{n:02d}-c{cores}-pin{pin}-spin{spin}-b{batch}"
    data_dir = os.path.join(scratch, name)
    os.makedirs(data_dir)
    broker = Broker(cores, pin, spin, data_dir, os.path.join(raw_dir, f"{name}-broker.log"))
    row = {"point": name, "cores": cores, "pin": pin, "spin_us": spin, "batch_records": batch,
           "loadavg_1m_start": loadavg().split()[0]}
    try:
        broker.wait_ready()
        aff = shard_affinity(broker.proc.pid)
        row["shard_cpus"] = " ".join(f"{k.split('-')[1]}:{v}" for k, v in sorted(aff.items()))
        cpu0, t0 = proc_cpu_secs(broker.proc.pid), time.time()
        common = ["--bootstrap", broker.addr, "--topic", "grid"]
        p = bench(common + [
            "--create", "--partitions", str(a.partitions), "--producers", str(a.producers),
            "--pipeline", str(a.pipeline), "--acks", "1", "--record-size", str(a.record_size),
            "--batch-records", str(batch), "--warmup", str(a.warmup), "--duration", str(a.duration),
            "--label", name,
        ], os.path.join(raw_dir, f"{name}-produce.json"), timeout=a.warmup + a.duration + 120)
        cpu1, t1 = proc_cpu_secs(broker.proc.pid), time.time()
        c = bench(common + [
            "--producers", "0", "--consumers", str(a.consumers), "--from", "earliest",
            "--warmup", "0", "--duration", "60", "--label", name,
        ], os.path.join(raw_dir, f"{name}-consume.json"), timeout=180)
        ps, cs = p.get("produce") or {}, c.get("consume") or {}
        lat = ps.get("latency") or {}
        row.update({
            "produce_msgs_per_sec": round(ps.get("msgs_per_sec", 0)),
            "produce_mb_per_sec": round(ps.get("mb_per_sec", 0), 1),
            "produce_batches_per_sec": round(ps.get("batches_per_sec", 0)),
            "produce_p50_ms": lat.get("p50_ms"),
            "produce_p99_ms": lat.get("p99_ms"),
            "produce_p99_9_ms": lat.get("p99_9_ms"),
            "produce_errors": ps.get("errors", 0),
            "consume_msgs_per_sec": round(cs.get("msgs_per_sec", 0)),
            "consume_mb_per_sec": round(cs.get("mb_per_sec", 0), 1),
            "consume_records": cs.get("records", 0),
            "consume_errors": cs.get("errors", 0),
            # Broker CPU during warm-up + measured produce, in % of one CPU.
            "broker_cpu_pct": round(100 * (cpu1 - cpu0) / max(t1 - t0, 1e-9)),
            "bench_exit": max(p["_exit"], c["_exit"]),
        })
    except Exception as e:  # keep going: one broken point must not lose the grid
        row["error"] = str(e)[:300]
        log(f"{name}: {e}")
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    with open(broker.log_path) as f:
        text = f.read()
    row["membind_logged"] = "numa.membind" in text
    row["loadavg_1m_end"] = loadavg().split()[0]
    return row


FIELDS = [
    "point", "cores", "pin", "spin_us", "batch_records", "produce_msgs_per_sec", "produce_mb_per_sec",
    "produce_batches_per_sec", "produce_p50_ms", "produce_p99_ms", "produce_p99_9_ms", "produce_errors",
    "consume_msgs_per_sec", "consume_mb_per_sec", "consume_records", "consume_errors", "broker_cpu_pct",
    "shard_cpus", "membind_logged", "loadavg_1m_start", "loadavg_1m_end", "bench_exit", "error",
]


def fmt_int(v):
    return f"{int(v):,}" if isinstance(v, (int, float)) else "—"


def fmt_ms(v):
    return f"{v:.2f}" if isinstance(v, (int, float)) else "—"


def ratio(num, den):
    if not isinstance(num, (int, float)) or not isinstance(den, (int, float)) or not den:
        return "—"
    return f"{num / den:.2f}"


def machine_summary():
    try:
        t = json.loads(subprocess.run([sys.executable, os.path.join(ROOT, "tuning/topology.py"), "--json"],
                                      capture_output=True, text=True).stdout)
        model = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        return (f"{len(t['cpus_online'])} CPUs ({model}), {t['physical_cores']} physical core(s), "
                f"SMT {'on' if t['smt'] else 'off'}, {len(t['numa_nodes'])} NUMA node(s), "
                f"kernel {os.uname().release}, THP {t['thp']['enabled']}, "
                f"cpufreq {'governor ' + ','.join(t['cpufreq']['governors']) if t['cpufreq']['driver'] else 'not exposed (VM)'}")
    except Exception as e:
        return f"(topology.py failed: {e})"


def write_md(path, a, rows, started, load_start, load_end, wall, cmdline):
    by = {(r["cores"], r["pin"], r["spin_us"], r["batch_records"]): r for r in rows}
    L = []
    L.append(f"# shardlog tuning grid, {started:%Y-%m-%d %H:%M} UTC\n")
    L.append(f"Generated by `{cmdline}` in {wall / 60:.1f} min.\n")
    L.append(f"- Machine: {machine_summary()}.")
    L.append(f"- `/proc/loadavg` at start: `{load_start}`; at end: `{load_end}`.")
    L.append("- The broker, the load generator and whatever else runs on the machine (other sessions' "
             "compiles and test suites were running during development) share the same CPUs. Absolute "
             "numbers are therefore noisy; compare **ratios within this run** (each pin on/off pair ran "
             "back to back), and repeat before trusting a difference under ~15%.")
    L.append(f"- Each point: fresh broker + data dir, produce acks=1, {a.record_size} B records, "
             f"{a.partitions} partitions, {a.producers} connections x {a.pipeline} in flight, closed loop, "
             f"{a.warmup:g} s warm-up + {a.duration:g} s measured; then a catch-up consume of everything "
             f"written with {a.consumers} connections. Latency = produce service time (closed loop).")
    L.append("- io_uring SQ polling: not a grid axis — glommio 0.9 does not set IORING_SETUP_SQPOLL and "
             "shardlog exposes no switch for it (see tuning/README.md).")
    L.append("- `shard cpus` is each shard thread's `Cpus_allowed_list` read from /proc while the broker "
             "ran (shard:cpus). `broker CPU` is the broker's user+system time during the produce phase, "
             "in % of one CPU.\n")
    L.append("| cores | pin | spin µs | batch | produce msg/s | MB/s | p50 ms | p99 ms | p99.9 ms | "
             "consume msg/s | consume MB/s | broker CPU % | shard cpus | errors |")
    L.append("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|:---|")
    for r in rows:
        err = r.get("error") or ""
        errs = (r.get("produce_errors") or 0) + (r.get("consume_errors") or 0)
        L.append(
            f"| {r['cores']} | {r['pin']} | {r['spin_us']} | {r['batch_records']} | "
            f"{fmt_int(r.get('produce_msgs_per_sec'))} | {r.get('produce_mb_per_sec', '—')} | "
            f"{fmt_ms(r.get('produce_p50_ms'))} | {fmt_ms(r.get('produce_p99_ms'))} | "
            f"{fmt_ms(r.get('produce_p99_9_ms'))} | {fmt_int(r.get('consume_msgs_per_sec'))} | "
            f"{r.get('consume_mb_per_sec', '—')} | {r.get('broker_cpu_pct', '—')} | "
            f"{r.get('shard_cpus', '')} | {err or errs} |")
    # Ratios: pinned / unpinned and spin / no spin, for produce msg/s and p99.
    if "on" in a.pins and "off" in a.pins:
        L.append("\n## Pinning: pinned ÷ unpinned (same cores, spin, batch)\n")
        L.append("| cores | spin µs | batch | produce msg/s ratio | p99 ratio | consume msg/s ratio |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for c in a.cores:
            for s in a.spins:
                for b in a.batches:
                    on, off = by.get((c, "on", s, b), {}), by.get((c, "off", s, b), {})
                    L.append(f"| {c} | {s} | {b} | {ratio(on.get('produce_msgs_per_sec'), off.get('produce_msgs_per_sec'))} | "
                             f"{ratio(on.get('produce_p99_ms'), off.get('produce_p99_ms'))} | "
                             f"{ratio(on.get('consume_msgs_per_sec'), off.get('consume_msgs_per_sec'))} |")
    if len(a.spins) > 1:
        s0, s1 = min(a.spins), max(a.spins)
        L.append(f"\n## Spin before park: {s1} µs ÷ {s0} µs (same cores, pin, batch)\n")
        L.append("| cores | pin | batch | produce msg/s ratio | p99 ratio | broker CPU ratio |")
        L.append("|---:|:---:|---:|---:|---:|---:|")
        for c in a.cores:
            for pn in a.pins:
                for b in a.batches:
                    hi, lo = by.get((c, pn, s1, b), {}), by.get((c, pn, s0, b), {})
                    L.append(f"| {c} | {pn} | {b} | {ratio(hi.get('produce_msgs_per_sec'), lo.get('produce_msgs_per_sec'))} | "
                             f"{ratio(hi.get('produce_p99_ms'), lo.get('produce_p99_ms'))} | "
                             f"{ratio(hi.get('broker_cpu_pct'), lo.get('broker_cpu_pct'))} |")
    if len(a.cores) > 1:
        c0, c1 = min(a.cores), max(a.cores)
        L.append(f"\n## Cores: {c1} ÷ {c0} shards (same pin, spin, batch)\n")
        L.append("| pin | spin µs | batch | produce msg/s ratio | p99 ratio | consume msg/s ratio |")
        L.append("|:---:|---:|---:|---:|---:|---:|")
        for pn in a.pins:
            for s in a.spins:
                for b in a.batches:
                    hi, lo = by.get((c1, pn, s, b), {}), by.get((c0, pn, s, b), {})
                    L.append(f"| {pn} | {s} | {b} | {ratio(hi.get('produce_msgs_per_sec'), lo.get('produce_msgs_per_sec'))} | "
                             f"{ratio(hi.get('produce_p99_ms'), lo.get('produce_p99_ms'))} | "
                             f"{ratio(hi.get('consume_msgs_per_sec'), lo.get('consume_msgs_per_sec'))} |")
    L.append("\nPlot: `results.png` (drawn by `tuning/plot.py results.csv results.png`). Raw load-generator "
             "JSON and broker logs: `raw/`.")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def plot(csv_path, png_path):
    plotter = os.path.join(ROOT, "tuning/plot.py")
    py = sys.executable
    if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode != 0:
        venv = os.path.join(ROOT, ".venv-tuning")
        py = os.path.join(venv, "bin/python")
        have = os.path.exists(py) and subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0
        if not have:
            log("matplotlib missing: creating .venv-tuning and installing it with pip")
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([os.path.join(venv, "bin/pip"), "install", "--quiet", "matplotlib"], check=True)
    subprocess.run([py, plotter, csv_path, png_path], check=True)


def main(argv):
    a = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    out = a.out or os.path.join(ROOT, "tuning/results", started.strftime("%Y-%m-%d"))
    raw = os.path.join(out, "raw")
    os.makedirs(raw, exist_ok=True)
    if not a.no_build:
        build()
    check_broker_supports_settings()
    scratch = os.path.join(ROOT, "target", f"tuning-run-{os.getpid()}")
    os.makedirs(scratch, exist_ok=True)
    points = [(c, pn, s, b) for b in a.batches for c in a.cores for s in a.spins for pn in a.pins]
    load_start = loadavg()
    log(f"{len(points)} point(s), ~{len(points) * (a.warmup + a.duration + 5) / 60:.1f} min; loadavg {load_start}")
    rows, t0 = [], time.time()
    try:
        for n, (c, pn, s, b) in enumerate(points, 1):
            r = run_point(a, n, c, pn, s, b, raw, scratch)
            rows.append(r)
            log(f"[{n}/{len(points)}] cores={c} pin={pn} spin={s} batch={b}: "
                f"produce {fmt_int(r.get('produce_msgs_per_sec'))} msg/s p99 {fmt_ms(r.get('produce_p99_ms'))} ms, "
                f"consume {fmt_int(r.get('consume_msgs_per_sec'))} msg/s, broker CPU {r.get('broker_cpu_pct', '—')}%, "
                f"shards {r.get('shard_cpus', '?')}" + (f" ERROR {r['error']}" if r.get("error") else ""))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load_end = loadavg()
    csv_path = os.path.join(out, "results.csv")
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    cmdline = "tuning/run-experiments.py" + ("" if not argv else " " + " ".join(argv))
    write_md(os.path.join(out, "results.md"), a, rows, started, load_start, load_end, time.time() - t0, cmdline)
    log(f"wrote {csv_path} and results.md")
    if not a.no_plot:
        try:
            plot(csv_path, os.path.join(out, "results.png"))
            log(f"wrote {os.path.join(out, 'results.png')}")
        except Exception as e:
            log(f"plot failed: {e}")
    failed = [r for r in rows if r.get("error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
