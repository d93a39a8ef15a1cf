//! sendfile benchmark: the zero-copy fetch send (`runtime::sendfile::send_file`) against the
//! copying ways of sending the same bytes, over loopback TCP.
//!
//! `cargo run --release --bin sendfile-bench [-- --file-mib 1024 --slice-kib 1024 --rounds 3]`
//!
//! A file (default 1 GiB, page-cached: written, synced and read once before measuring) is sent
//! whole, in slices (default 1 MiB, as a Fetch of `max.partition.fetch.bytes` would), from a
//! glommio executor to a blocking reader thread on the other core, one connection per run.
//! Modes, interleaved round by round:
//! - `sendfile`: [`send_file_with_stats`] per slice (page cache → socket);
//! - `uring-copy`: [`LogFile::read_at`] (an io_uring read into a fresh buffer, what
//!   `Segment::read` does for a Fetch today) then `Conn::write_all`;
//! - `pread-copy`: a `pread` into one reused buffer on the shard's thread, then
//!   `Conn::write_all` (the cheapest copy possible).
//!
//! Reported per run: throughput (file bytes / time from the first send until the reader has the
//! last byte), CPU time of the sending thread (user + system, `getrusage(RUSAGE_THREAD)`, taken
//! when the last write returns) and of the reader thread. On loopback the kernel's TCP receive
//! work runs partly in the sender's context, so "sender CPU" includes some of it in every mode.
//! The machine has 2 cores and other jobs may run: compare modes within one invocation.

use clap::Parser;
use shardlog::runtime::file::{run_local, FileSlice, LogFile};
use shardlog::runtime::net::Listener;
use shardlog::runtime::sendfile::{send_file_with_stats, SendStats};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "sendfile vs copy, loopback, page-cached file")]
struct Args {
    /// File size in MiB.
    #[arg(long, default_value_t = 1024)]
    file_mib: u64,
    /// Bytes per send (one Fetch's worth), in KiB.
    #[arg(long, default_value_t = 1024)]
    slice_kib: usize,
    /// Runs of each mode (interleaved).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory for the data file (default: the system temp dir). Deleted at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Modes to run (comma-separated): sendfile, uring-copy, pread-copy.
    #[arg(
        long,
        default_value = "sendfile,uring-copy,pread-copy",
        value_delimiter = ','
    )]
    modes: Vec<String>,
}

/// One measured run.
struct Run {
    mode: String,
    bytes: u64,
    wall: Duration,
    sender_cpu: Duration,
    receiver_cpu: Duration,
    stats: SendStats,
}

fn thread_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

fn pin(core: usize) {
    if let Some(id) = core_affinity::get_core_ids().and_then(|ids| ids.into_iter().nth(core)) {
        core_affinity::set_for_current(id);
    }
}

/// Create (or reuse) the data file and make sure it is in the page cache.
fn prepare(path: &PathBuf, len: u64) -> std::io::Result<()> {
    let fresh = std::fs::metadata(path)
        .map(|m| m.len() != len)
        .unwrap_or(true);
    if fresh {
        let mut f = std::fs::File::create(path)?;
        let mut block = vec![0u8; 1 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            f.write_all(&block[..n])?;
            block.rotate_left(7); // not the same MiB over and over
            left -= n as u64;
        }
        // Clean pages: no writeback competes with the measurement.
        f.sync_all()?;
    }
    // Read it once so every page is cached.
    let f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let n = f.read_at(&mut buf, pos)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
    }
    Ok(())
}

fn run_one(mode: &str, path: &PathBuf, len: u64, slice: usize) -> std::io::Result<Run> {
    let mode = mode.to_string();
    run_local(async move {
        let listener = Listener::bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?)?;
        let addr = listener.local_addr()?;
        let reader = std::thread::spawn(move || -> std::io::Result<(Instant, Duration)> {
            pin(1);
            let cpu0 = thread_cpu();
            let mut s = std::net::TcpStream::connect(addr)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0u64;
            while got < len {
                let n = s.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                got += n as u64;
            }
            Ok((Instant::now(), thread_cpu() - cpu0))
        });
        let mut conn = listener.accept().await?;
        let file = std::fs::File::open(path)?;
        let fd = Arc::new(std::os::fd::OwnedFd::from(file.try_clone()?));
        let log_file = LogFile::open(path).await?;
        let mut buf = vec![0u8; slice];
        let mut stats = SendStats::default();

        let cpu0 = thread_cpu();
        let t0 = Instant::now();
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(slice as u64) as usize;
            match mode.as_str() {
                "sendfile" => {
                    let s = FileSlice {
                        fd: fd.clone(),
                        pos,
                        len: n,
                    };
                    let st = send_file_with_stats(&mut conn, &s).await?;
                    stats.zero_copy_bytes += st.zero_copy_bytes;
                    stats.stall_copy_bytes += st.stall_copy_bytes;
                    stats.cold_copy_bytes += st.cold_copy_bytes;
                    stats.stalls += st.stalls;
                }
                "uring-copy" => {
                    let b = log_file.read_exact_at(pos, n).await?;
                    conn.write_all(&b).await?;
                }
                "pread-copy" => {
                    file.read_exact_at(&mut buf[..n], pos)?;
                    conn.write_all(&buf[..n]).await?;
                }
                other => {
                    return Err(std::io::Error::other(format!("unknown mode {other}")));
                }
            }
            pos += n as u64;
        }
        let sender_cpu = thread_cpu() - cpu0;
        // Wait for the reader with the executor running (a blocking join would stall it).
        while !reader.is_finished() {
            shardlog::runtime::sleep(Duration::from_millis(1)).await;
        }
        let (done, receiver_cpu) = reader
            .join()
            .map_err(|_| std::io::Error::other("reader thread panicked"))??;
        let _ = log_file.close().await;
        Ok(Run {
            mode,
            bytes: len,
            wall: done - t0,
            sender_cpu,
            receiver_cpu,
            stats,
        })
    })
}

fn gbps(r: &Run) -> f64 {
    r.bytes as f64 / r.wall.as_secs_f64() / 1e9
}

fn print_run(r: &Run) {
    let copied = r.stats.stall_copy_bytes + r.stats.cold_copy_bytes;
    let extra = if r.mode == "sendfile" {
        format!(
            "  zero-copy {:.1}%, {} stalls, {:.1} MiB copied",
            100.0 * r.stats.zero_copy_bytes as f64 / r.bytes as f64,
            r.stats.stalls,
            copied as f64 / (1 << 20) as f64
        )
    } else {
        String::new()
    };
    println!(
        "{:<11} {:>6.2} GB/s  sender CPU {:>6.3} s ({:>5.1}% of wall, {:>5.3} s/GB)  reader CPU {:>6.3} s{}",
        r.mode,
        gbps(r),
        r.sender_cpu.as_secs_f64(),
        100.0 * r.sender_cpu.as_secs_f64() / r.wall.as_secs_f64(),
        r.sender_cpu.as_secs_f64() / (r.bytes as f64 / 1e9),
        r.receiver_cpu.as_secs_f64(),
        extra
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!(
        "shardlog-sendfile-bench-{}.dat",
        std::process::id()
    ));
    let len = args.file_mib << 20;
    let slice = args.slice_kib << 10;
    pin(0);
    println!(
        "file {} MiB at {}, slices of {} KiB, {} rounds; sender on core 0, reader on core 1",
        args.file_mib,
        path.display(),
        args.slice_kib,
        args.rounds
    );
    prepare(&path, len)?;
    let mut runs = Vec::new();
    let result = (|| -> std::io::Result<()> {
        for _ in 0..args.rounds {
            for m in &args.modes {
                let r = run_one(m, &path, len, slice)?;
                print_run(&r);
                runs.push(r);
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    result?;
    println!("median of {} rounds:", args.rounds);
    for m in &args.modes {
        let of =
            |f: &dyn Fn(&Run) -> f64| median(runs.iter().filter(|r| &r.mode == m).map(f).collect());
        println!(
            "{:<11} {:>6.2} GB/s  sender CPU {:>5.3} s/GB  reader CPU {:>5.3} s/GB",
            m,
            of(&gbps),
            of(&|r| r.sender_cpu.as_secs_f64() / (r.bytes as f64 / 1e9)),
            of(&|r| r.receiver_cpu.as_secs_f64() / (r.bytes as f64 / 1e9)),
        );
    }
    Ok(())
}
