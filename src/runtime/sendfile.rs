//! Zero-copy sends of log file ranges to a client socket: the write half of Kafka's
//! `FileRecords.writeTo` (page cache → socket with `sendfile(2)`, no copy through user space).
//!
//! # Why not just call `sendfile`
//! A shard's thread must never sleep in a system call, and a plain `sendfile` can do so twice:
//! - on the socket: glommio's sockets are in *blocking* mode (glommio itself never waits in a
//!   syscall: it sends with `MSG_DONTWAIT` and waits for room with an io_uring poll, which it
//!   keeps private). `sendfile` has no flags argument, so a full send buffer would block it;
//! - on the file: `sendfile` reads the page cache synchronously, so a page that is not cached
//!   means a disk read on the shard's thread (the copying fetch path reads through io_uring,
//!   where the kernel's worker threads do that wait).
//!
//! # How
//! [`send_file`] walks the slice in windows of [`WINDOW`] bytes:
//! 1. `cachestat(2)` the window. If every page is cached, `sendfile` it with `O_NONBLOCK` set on
//!    the socket *only around the call* (two `fcntl`s, restored before anything can await, so
//!    neither glommio nor another task ever sees the flag).
//! 2. When the socket is full (`EAGAIN`), read [`STALL_CHUNK`] bytes into memory (io_uring) and
//!    write them with glommio's normal awaiting write. That write is how we wait for room (in
//!    io_uring, the thread runs other tasks meanwhile) without a second ring: once it returns,
//!    the kernel has freed space, and `sendfile` resumes zero-copy. So a slow reader costs one
//!    small copy per stall, not a copy of the slice.
//! 3. A window that is not fully cached (a consumer catching up on old data) is copied in
//!    [`COLD_CHUNK`] pieces read through io_uring, exactly as the copying path would.
//!
//! An alternative is the io_uring side ring of DESIGN.md (splice file → pipe → socket, with
//! an eventfd the shard awaits). It would also cover the remaining gaps below, at the price of
//! a second ring per shard and a pipe per connection; the bench (`bench/sendfile`) measures
//! this simpler scheme.
//!
//! # Remaining gaps
//! - `cachestat` is a snapshot: a page evicted between the check and the `sendfile`, or one
//!   that is being read in at that moment (it counts as cached), makes `sendfile` wait for one
//!   disk read on the thread.
//! - Without `cachestat` (kernels before 6.5, a seccomp filter that refuses it, other
//!   architectures) every window is assumed cached, i.e. plain `sendfile` behaviour, as Kafka.
//! - `sendfile` has no `MSG_NOSIGNAL`: writing to a connection the peer reset raises
//!   `SIGPIPE`. Rust programs start with `SIGPIPE` ignored (std does it before `main`; glommio's
//!   own `send`s rely on this too), so the call fails with `EPIPE` instead.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use glommio::io::BufferedFile;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

use crate::runtime::file::FileSlice;
use crate::runtime::net::Conn;

/// Bytes checked with one `cachestat` and offered to one `sendfile`. A socket takes at most its
/// send buffer per call (a few MiB at most on Linux), so larger windows save nothing; smaller
/// ones would cost more `cachestat`s.
pub const WINDOW: u64 = 1 << 20;

/// Bytes copied when the socket is full, through glommio's write, which is what waits for room.
/// Measured on loopback (`bench/sendfile`, 1 GiB in 1 MiB slices, ~300-400 stalls): 4 and
/// 16 KiB gave ~2.2 GB/s, 64 KiB ~2.3-2.9 GB/s while copying 2% of the bytes, 256 KiB no
/// better while copying 6%.
pub const STALL_CHUNK: usize = 64 << 10;

/// Bytes read per io_uring read when the data is not in the page cache. Large enough that the
/// disk (and readahead) sees big requests.
pub const COLD_CHUNK: usize = 256 << 10;

/// How the bytes of one [`send_file_with_stats`] call travelled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendStats {
    /// Bytes sent by `sendfile` (page cache → socket, no user-space copy).
    pub zero_copy_bytes: u64,
    /// Bytes read into memory and written to wait for socket room (see [`STALL_CHUNK`]).
    pub stall_copy_bytes: u64,
    /// Bytes read into memory because they were not in the page cache.
    pub cold_copy_bytes: u64,
    /// Times `sendfile` found the socket full.
    pub stalls: u64,
}

/// Send `slice.len` bytes of `slice.fd` from `slice.pos` to `conn`, without ever blocking the
/// shard's thread on the socket (and, where `cachestat` works, not on the disk either).
///
/// Errors: `UnexpectedEof` if the file ends before the slice does (it was truncated), the
/// socket's error if the peer went away (`EPIPE`, `ECONNRESET`), any I/O error of the file.
/// After an error an unknown prefix of the slice has been sent, so the response framing on
/// the connection is broken: the caller must close it.
pub async fn send_file(conn: &mut Conn, slice: &FileSlice) -> io::Result<()> {
    send_file_with_stats(conn, slice).await.map(|_| ())
}

/// [`send_file`], also reporting how the bytes were sent (for benchmarks and metrics).
pub async fn send_file_with_stats(conn: &mut Conn, slice: &FileSlice) -> io::Result<SendStats> {
    let mut stats = SendStats::default();
    let end = slice
        .pos
        .checked_add(slice.len as u64)
        .filter(|e| i64::try_from(*e).is_ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "sendfile: slice {}+{} past the largest file offset",
                    slice.pos, slice.len
                ),
            )
        })?;
    let sock = conn.raw_fd();
    let sock_flags = socket_flags(sock)?;
    let mut pos = slice.pos;
    // [pos, cached_until) was entirely in the page cache when last checked.
    let mut cached_until = pos;
    // Reads for the copying fallbacks, through io_uring; opened on the first copy only.
    let mut reader: Option<BufferedFile> = None;
    let result = async {
        while pos < end {
            if pos >= cached_until {
                let window = (end - pos).min(WINDOW);
                if is_cached(slice.fd.as_fd(), pos, window) {
                    cached_until = pos + window;
                }
            }
            let stalled = if pos < cached_until {
                // At most WINDOW bytes: fits a usize.
                let count = usize::try_from(cached_until - pos).unwrap_or(WINDOW as usize);
                match sendfile_nonblocking(sock, sock_flags, slice.fd.as_fd(), pos, count)? {
                    Sent::Bytes(0) => return Err(truncated(pos, end)),
                    Sent::Bytes(n) => {
                        pos += n as u64;
                        stats.zero_copy_bytes += n as u64;
                        continue;
                    }
                    Sent::Full => {
                        stats.stalls += 1;
                        true
                    }
                }
            } else {
                false
            };
            let chunk = if stalled { STALL_CHUNK } else { COLD_CHUNK };
            let len = usize::try_from(end - pos).unwrap_or(chunk).min(chunk);
            let file = match reader.as_ref() {
                Some(f) => f,
                None => reader.insert(open_reader(&slice.fd)?),
            };
            let buf = file
                .read_at(pos, len)
                .await
                .map_err(|e| with_context("read for send", e.into()))?;
            if buf.is_empty() {
                return Err(truncated(pos, end));
            }
            conn.write_all(&buf).await?;
            pos += buf.len() as u64;
            if stalled {
                stats.stall_copy_bytes += buf.len() as u64;
            } else {
                stats.cold_copy_bytes += buf.len() as u64;
            }
        }
        Ok(())
    }
    .await;
    if let Some(file) = reader {
        // A read-only duplicate: closing it reports nothing about the data sent.
        let _ = file.close().await;
    }
    result.map(|()| stats)
}

/// The error of a slice that runs past the end of its file.
fn truncated(pos: u64, end: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("sendfile: file ends at {pos}, before the slice end {end} (truncated?)"),
    )
}

fn with_context(op: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{op}: {e}"))
}

/// The socket's file status flags, read once per send (they are restored to this after each
/// `sendfile`).
fn socket_flags(sock: RawFd) -> io::Result<OFlag> {
    let bits = fcntl(sock, FcntlArg::F_GETFL)
        .map_err(|e| with_context("fcntl(F_GETFL) on socket", e.into()))?;
    Ok(OFlag::from_bits_retain(bits))
}

enum Sent {
    /// `sendfile` moved this many bytes (0: the file ended first).
    Bytes(usize),
    /// The socket's send buffer is full.
    Full,
}

/// One `sendfile` of `count` bytes at `pos` that cannot block on the socket: `O_NONBLOCK` is set
/// just for the call and restored before returning (this is synchronous code on the shard's
/// only thread, so nothing else can observe the flag in between).
fn sendfile_nonblocking(
    sock: RawFd,
    flags: OFlag,
    file: BorrowedFd<'_>,
    pos: u64,
    count: usize,
) -> io::Result<Sent> {
    let mut offset = i64::try_from(pos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "sendfile: offset too large"))?;
    // SAFETY: `sock` is the descriptor of the `Conn` our caller borrows mutably for the whole
    // send, so it stays open for the lifetime of this borrow, which ends with this function.
    let out = unsafe { BorrowedFd::borrow_raw(sock) };
    let toggle = !flags.contains(OFlag::O_NONBLOCK);
    if toggle {
        fcntl(sock, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))
            .map_err(|e| with_context("fcntl(O_NONBLOCK) on socket", e.into()))?;
    }
    let result = loop {
        match nix::sys::sendfile::sendfile(out, file, Some(&mut offset), count) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    if toggle {
        fcntl(sock, FcntlArg::F_SETFL(flags))
            .map_err(|e| with_context("fcntl(restore flags) on socket", e.into()))?;
    }
    match result {
        Ok(n) => Ok(Sent::Bytes(n)),
        Err(Errno::EAGAIN) => Ok(Sent::Full),
        Err(e) => Err(with_context("sendfile", e.into())),
    }
}

/// A glommio file on a fresh duplicate of `fd`, for io_uring reads on this shard (the slice's
/// descriptor may have been made on another shard; glommio files belong to one executor).
fn open_reader(fd: &OwnedFd) -> io::Result<BufferedFile> {
    let dup = fd
        .try_clone()
        .map_err(|e| with_context("dup for send", e))?;
    // SAFETY: `dup` is a descriptor we own exclusively; `into_raw_fd` gives up that ownership
    // and the `BufferedFile` takes it over (it closes the descriptor on close or drop).
    Ok(unsafe { BufferedFile::from_raw_fd(dup.into_raw_fd()) })
}

/// Set once `cachestat` turns out to be unavailable, so it is not tried on every window.
static CACHESTAT_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Whether every page of `[pos, pos + len)` of `file` is in the page cache, i.e. whether a
/// `sendfile` of it will not read the disk. `true` when that cannot be known (see the module
/// docs), which is plain `sendfile` behaviour.
fn is_cached(file: BorrowedFd<'_>, pos: u64, len: u64) -> bool {
    if len == 0 || CACHESTAT_UNAVAILABLE.load(Ordering::Relaxed) {
        return true;
    }
    match cachestat(file, pos, len) {
        Ok(cached_pages) => {
            let page = page_size();
            let pages = (pos + len - 1) / page - pos / page + 1;
            cached_pages >= pages
        }
        Err(Errno::ENOSYS | Errno::EPERM | Errno::EOPNOTSUPP) => {
            CACHESTAT_UNAVAILABLE.store(true, Ordering::Relaxed);
            true
        }
        // Anything else (e.g. a bad descriptor) will fail the sendfile too, with its own error.
        Err(_) => true,
    }
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf takes no pointers and has no preconditions.
        let v = unsafe { nix::libc::sysconf(nix::libc::_SC_PAGESIZE) };
        u64::try_from(v).ok().filter(|p| *p > 0).unwrap_or(4096)
    })
}

/// `struct cachestat_range` of `<linux/mman.h>`.
#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

/// `struct cachestat` of `<linux/mman.h>`.
#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Number of pages of `[off, off + len)` of `file` in the page cache (Linux >= 6.5). The libc
/// crate has no binding for it on x86_64 yet; the number is the same on every architecture
/// that uses the unified syscall table.
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64"
    )
))]
fn cachestat(file: BorrowedFd<'_>, off: u64, len: u64) -> Result<u64, Errno> {
    const SYS_CACHESTAT: nix::libc::c_long = 451;
    let range = CachestatRange { off, len };
    let mut out = Cachestat::default();
    // SAFETY: `range` and `out` are live, properly aligned `repr(C)` values with the layout
    // of the kernel's structs; the kernel reads `range` and writes at most
    // `size_of::<Cachestat>()` bytes to `out`; `file` is an open descriptor; flags must be 0.
    let r = unsafe {
        nix::libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const CachestatRange,
            &mut out as *mut Cachestat,
            0u32,
        )
    };
    Errno::result(r).map(|_| out.nr_cache)
}

#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64"
    )
)))]
fn cachestat(_file: BorrowedFd<'_>, _off: u64, _len: u64) -> Result<u64, Errno> {
    Err(Errno::ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::file::run_local;
    use crate::runtime::net::Listener;
    use std::cell::Cell;
    use std::io::Read;
    use std::net::TcpStream;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A file of `len` bytes of a non-repeating pattern (so a misplaced chunk shows).
    fn pattern_file(dir: &std::path::Path, len: usize) -> (std::path::PathBuf, Vec<u8>) {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let path = dir.join("data.log");
        std::fs::write(&path, &data).unwrap();
        (path, data)
    }

    fn slice_of(path: &std::path::Path, pos: u64, len: usize) -> FileSlice {
        let f = std::fs::File::open(path).unwrap();
        FileSlice {
            fd: Arc::new(OwnedFd::from(f)),
            pos,
            len,
        }
    }

    /// A loopback connection: the shard's side as a `Conn`, the peer as a blocking std socket
    /// (to be moved to a thread). Connecting needs no accept (the backlog completes it).
    async fn connected_pair() -> (Conn, TcpStream) {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let conn = listener.accept().await.unwrap();
        (conn, peer)
    }

    /// Wait for a peer thread while the executor keeps running. Blocking in `join` would
    /// stall the reactor, and a dropped socket is only really closed once the reactor cancels
    /// glommio's pending read poll on it: the peer would never see EOF.
    async fn join<T>(h: std::thread::JoinHandle<T>) -> T {
        while !h.is_finished() {
            crate::runtime::sleep(Duration::from_millis(1)).await;
        }
        h.join().unwrap()
    }

    /// Small socket buffers (256 KiB to send, 64 KiB to receive; the kernel doubles both), so
    /// a few hundred KiB fill the connection and the would-block path runs.
    fn shrink_buffers(conn: &Conn, peer: &TcpStream) {
        use nix::sys::socket::{setsockopt, sockopt};
        // SAFETY: `conn` outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(conn.raw_fd()) };
        setsockopt(&fd, sockopt::SndBuf, &(256 << 10)).unwrap();
        setsockopt(peer, sockopt::RcvBuf, &(64 << 10)).unwrap();
    }

    #[test]
    fn send_file_to_a_slow_reader_sends_the_exact_bytes_without_blocking_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = pattern_file(dir.path(), 6 << 20);
        // An odd start and length: not page- or chunk-aligned.
        let (pos, len) = (1234u64, (6 << 20) - 5000);
        run_local(async {
            let (mut conn, mut peer) = connected_pair().await;
            shrink_buffers(&conn, &peer);
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    match peer.read(&mut buf).unwrap() {
                        0 => return got,
                        n => got.extend_from_slice(&buf[..n]),
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
            });
            // Another task on the same executor: it only advances if the thread is free.
            let ticks = Rc::new(Cell::new(0u64));
            let done = Rc::new(Cell::new(false));
            let (t, d) = (ticks.clone(), done.clone());
            crate::runtime::spawn(async move {
                while !d.get() {
                    crate::runtime::sleep(Duration::from_millis(1)).await;
                    t.set(t.get() + 1);
                }
            });
            let started = Instant::now();
            let stats = send_file_with_stats(&mut conn, &slice_of(&path, pos, len))
                .await
                .unwrap();
            let took = started.elapsed();
            eprintln!(
                "slow reader: {stats:?} in {took:?}, other task ticked {} times",
                ticks.get()
            );
            done.set(true);
            drop(conn);
            let got = join(reader).await;
            assert_eq!(got.len(), len);
            assert!(
                got == data[pos as usize..pos as usize + len],
                "bytes differ"
            );
            let sent = stats.zero_copy_bytes + stats.stall_copy_bytes + stats.cold_copy_bytes;
            assert_eq!(sent, len as u64);
            assert!(stats.stalls > 0, "the socket never filled up: {stats:?}");
            assert!(
                stats.zero_copy_bytes > stats.stall_copy_bytes,
                "mostly zero-copy expected: {stats:?}"
            );
            // The reader needs >= 96 ms (192 reads, 0.5 ms apart); a blocked shard would see
            // no ticks at all during that time.
            assert!(
                ticks.get() >= 10,
                "other task ran {} times in {took:?}",
                ticks.get()
            );
        });
    }

    #[test]
    fn send_file_reports_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = pattern_file(dir.path(), 100_000);
        run_local(async {
            let (mut conn, mut peer) = connected_pair().await;
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                let _ = peer.read_to_end(&mut got);
                got
            });
            // The slice claims more than the file holds (as after a truncation).
            let e = send_file(&mut conn, &slice_of(&path, 0, 200_000))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            drop(conn);
            assert_eq!(join(reader).await, data);
        });
    }

    #[test]
    fn send_file_fails_when_the_peer_resets() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = pattern_file(dir.path(), 8 << 20);
        run_local(async {
            let (mut conn, peer) = connected_pair().await;
            shrink_buffers(&conn, &peer);
            // Linger 0: close sends a RST instead of a FIN.
            // SAFETY: `peer` outlives this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(peer.as_raw_fd()) };
            let linger = nix::libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Linger, &linger).unwrap();
            let closer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                drop(peer);
            });
            let e = send_file(&mut conn, &slice_of(&path, 0, 8 << 20))
                .await
                .unwrap_err();
            join(closer).await;
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ),
                "{e}"
            );
        });
    }

    #[test]
    fn send_file_copies_pages_that_are_not_in_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let (path, data) = pattern_file(dir.path(), 2 << 20);
        let slice = slice_of(&path, 0, 2 << 20);
        // Clean pages can be dropped from the cache: sync, then advise DONTNEED.
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        nix::fcntl::posix_fadvise(
            slice.fd.as_raw_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        let evicted = !is_cached(slice.fd.as_fd(), 0, WINDOW);
        run_local(async {
            let (mut conn, mut peer) = connected_pair().await;
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).unwrap();
                got
            });
            let stats = send_file_with_stats(&mut conn, &slice).await.unwrap();
            eprintln!("evicted: {evicted}, {stats:?}");
            drop(conn);
            assert!(join(reader).await == data, "bytes differ");
            if evicted {
                assert!(stats.cold_copy_bytes > 0, "{stats:?}");
            } else {
                // cachestat unavailable, or the kernel kept the pages: plain sendfile.
                eprintln!("pages stayed cached or cachestat is unavailable: {stats:?}");
            }
        });
    }

    #[test]
    fn an_empty_slice_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = pattern_file(dir.path(), 10);
        run_local(async {
            let (mut conn, mut peer) = connected_pair().await;
            let reader = std::thread::spawn(move || {
                let mut got = Vec::new();
                peer.read_to_end(&mut got).unwrap();
                got
            });
            send_file(&mut conn, &slice_of(&path, 5, 0)).await.unwrap();
            conn.write_all(b"x").await.unwrap();
            drop(conn);
            assert_eq!(join(reader).await, b"x");
        });
    }
}
