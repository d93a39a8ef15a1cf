//! File I/O for the storage engine: the only module that touches glommio's file APIs.
//!
//! # Why buffered, not O_DIRECT
//! Log segments are written through the page cache (`glommio::io::BufferedFile`, io_uring
//! submissions on the shard's own ring). Measured on our machines, O_DIRECT appends were barely
//! faster (1.9 vs 1.8 GB/s) but they bypass the page cache, so a Fetch that follows a Produce
//! (the common tailing-consumer case) or a sendfile of fresh data would go to the disk. Buffered
//! writes keep the tail hot in memory; durability is explicit through [`LogFile::fdatasync`].
//!
//! # Errors
//! Every method returns `std::io::Error` (never a glommio type) whose message carries the
//! operation and the path, like glommio's own "enhanced" errors, so a log line such as
//! `fdatasync /data/t-0/00000000000000000000.log: No space left on device` is actionable.
//! The `ErrorKind` of the underlying OS error is preserved.
//!
//! # Threading
//! Everything here is `!Send` and must run inside a glommio executor (the shard that owns the
//! partition). [`run_local`] creates one for tests and tools.

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

/// How appends reach the page cache (broker setting `log.append.io`).
///
/// For a buffered (page-cache) file on ext4, an io_uring write cannot complete inline: the kernel
/// punts it to an io-wq worker thread, so every append costs two context switches and a wake-up
/// of the shard. A plain `pwrite` on the shard's thread is a memcpy into cached pages. The price:
/// when the kernel throttles writers (too many dirty pages) or must read back an evicted partial
/// tail page, the whole shard waits, not just one worker thread; `uring` avoids that at the cost
/// of throughput.
/// Measured in docs/PERFORMANCE.md ("append path"); `Uring` stays for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendIo {
    Pwrite,
    Uring,
}

static APPEND_IO_URING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses how appends are written, for the whole process (set once at startup).
pub fn set_append_io(mode: AppendIo) {
    APPEND_IO_URING.store(
        mode == AppendIo::Uring,
        std::sync::atomic::Ordering::Relaxed,
    );
}

fn append_io() -> AppendIo {
    match APPEND_IO_URING.load(std::sync::atomic::Ordering::Relaxed) {
        true => AppendIo::Uring,
        false => AppendIo::Pwrite,
    }
}

/// Appended bytes per segment after which the kernel is told to start writing them to disk
/// (broker setting `log.writeback.bytes`; 0: leave it to the kernel).
///
/// Left alone, the kernel lets dirty pages pile up to `vm.dirty_background_ratio` of memory
/// (gigabytes here) and then flushes them in bursts from its worker threads while throttling
/// every writer in `balance_dirty_pages` — latency spikes of tens of milliseconds for every
/// client of the shard, even at a moderate rate. Starting writeback early for each chunk
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which queues the I/O and does not wait for it to
/// complete — only, when the disk is saturated, for room in the device queue) keeps the dirty
/// backlog small and even. The pages stay cached for readers.
static WRITEBACK_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Chooses the write-behind chunk for the whole process (set once at startup; 0 disables).
pub fn set_writeback_bytes(bytes: u64) {
    WRITEBACK_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The write-behind chunk, 0 when disabled (see [`set_writeback_bytes`]).
pub fn writeback_bytes() -> u64 {
    WRITEBACK_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Appended bytes each active segment keeps in the page cache behind its end once they were
/// written back (broker setting `log.drop.behind.bytes`; 0: keep everything, as Kafka does).
static DROP_BEHIND_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Chooses the drop-behind distance for the whole process (set once at startup; 0 disables).
pub fn set_drop_behind_bytes(bytes: u64) {
    DROP_BEHIND_BYTES.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The drop-behind distance, 0 when disabled (see [`set_drop_behind_bytes`]).
pub fn drop_behind_bytes() -> u64 {
    DROP_BEHIND_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Tells the kernel that `len` bytes at `pos` of `fd` will not be read soon
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`): clean cached pages are dropped, pages still dirty or
/// under writeback stay. A hint: it never loses data.
pub fn drop_cached(fd: std::os::fd::BorrowedFd<'_>, pos: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(nbytes)) = (libc::off64_t::try_from(pos), libc::off64_t::try_from(len))
    else {
        return Err(io::Error::other("drop range out of bounds"));
    };
    // SAFETY: plain syscall on a borrowed (so open) descriptor, no memory is passed.
    let rc =
        unsafe { libc::posix_fadvise64(fd.as_raw_fd(), offset, nbytes, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Convert any glommio error into a `std::io::Error` that names the operation and the file.
fn io_err<T>(op: &'static str, path: &Path, err: glommio::GlommioError<T>) -> io::Error {
    let inner: io::Error = err.into();
    io::Error::new(inner.kind(), format!("{op} {}: {inner}", path.display()))
}

/// An open file of a partition log (segment or index), accessed with positional buffered I/O.
///
/// Invariants: the file stays open for the lifetime of the value (dropping it closes the
/// descriptor); `path` is the path it was opened with. Positional reads and writes do not share a
/// cursor, so concurrent reads on one shard never disturb an in-flight append.
#[derive(Debug)]
pub struct LogFile {
    file: BufferedFile,
    path: PathBuf,
    /// A `dup` of `file`'s descriptor for [`FileSlice`]s, shared by every slice alive at once
    /// (concurrent fetches do not pay a `dup` and a descriptor each) and closed when the last
    /// one goes: an idle partition holds no second descriptor, so descriptors scale with
    /// segments, not twice that.
    shared_fd: std::cell::RefCell<std::sync::Weak<std::os::fd::OwnedFd>>,
}

impl LogFile {
    /// Open `path` for reading and writing, creating it (empty) if it does not exist.
    pub async fn open(path: &Path) -> io::Result<LogFile> {
        Self::open_with(path, true).await
    }

    /// Open the existing file at `path` for reading and writing (NotFound if it is absent).
    pub async fn open_existing(path: &Path) -> io::Result<LogFile> {
        Self::open_with(path, false).await
    }

    async fn open_with(path: &Path, create: bool) -> io::Result<LogFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .buffered_open(path)
            .await
            .map_err(|e| io_err("open", path, e))?;
        Ok(LogFile {
            file,
            path: path.to_path_buf(),
            shared_fd: std::cell::RefCell::new(std::sync::Weak::new()),
        })
    }

    /// The file's identity: device, inode and birth time (`statx` on the open descriptor; the
    /// birth time, where the filesystem records it, tells a reused inode number apart). Tells a
    /// file reopened by name from another file created at the same path since.
    pub fn identity(&self) -> io::Result<(u64, u64, i64, u32)> {
        use std::os::fd::AsRawFd;
        let mut stx = std::mem::MaybeUninit::<libc::statx>::zeroed();
        // SAFETY: `stx` is a writable statx buffer; the descriptor belongs to `self.file`,
        // which outlives this call; the empty path with AT_EMPTY_PATH names the descriptor.
        let rc = unsafe {
            libc::statx(
                self.file.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_INO | libc::STATX_BTIME,
                stx.as_mut_ptr(),
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("statx {}: {e}", self.path.display()),
            ));
        }
        // SAFETY: statx succeeded and filled the buffer (it was zeroed before).
        let stx = unsafe { stx.assume_init() };
        let dev = (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor);
        let (btime_s, btime_ns) = if stx.stx_mask & libc::STATX_BTIME != 0 {
            (stx.stx_btime.tv_sec, stx.stx_btime.tv_nsec)
        } else {
            (0, 0)
        };
        Ok((dev, stx.stx_ino, btime_s, btime_ns))
    }

    /// The path this file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of this file that outlives it, for [`FileSlice`]s (zero-copy fetch).
    ///
    /// It is a `dup` (close-on-exec), made when no slice holds one and shared while any does:
    /// then a call only bumps the `Arc`. Being a separate descriptor, it keeps the file readable after this `LogFile`
    /// is closed or the file unlinked (retention), for as long as a slice holds it. It shares
    /// the open file description, but slices are only read positionally (`sendfile` with an
    /// explicit offset, `pread`), so the shared file offset is never used.
    pub fn shared_fd(&self) -> io::Result<std::sync::Arc<std::os::fd::OwnedFd>> {
        use std::os::fd::{AsRawFd, BorrowedFd};
        if let Some(fd) = self.shared_fd.borrow().upgrade() {
            return Ok(fd);
        }
        // SAFETY: the descriptor belongs to `self.file`, which stays open while `self` is
        // borrowed; the `BorrowedFd` lives only for the `dup` below.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.file.as_raw_fd()) };
        let owned = borrowed
            .try_clone_to_owned()
            .map_err(|e| io::Error::new(e.kind(), format!("dup {}: {e}", self.path.display())))?;
        let fd = std::sync::Arc::new(owned);
        *self.shared_fd.borrow_mut() = std::sync::Arc::downgrade(&fd);
        Ok(fd)
    }

    /// Write every byte of `parts`, in order, from byte position `pos` on.
    ///
    /// `pwrite` mode: one `pwritev` on the shard's thread straight from the caller's buffers
    /// (several when a short write or more than 1024 parts need it). `uring` mode: the parts are
    /// copied into one buffer for io_uring; glommio consumes it and does not give it back, so a
    /// *short* write (on a regular file only when the device or quota is full, where a retry
    /// fails with ENOSPC anyway) is reported as `WriteZero` naming how many bytes landed. On any
    /// error some prefix may be in the file: callers that track a logical end must not advance
    /// it, and should truncate back to it.
    pub async fn write_vectored_at(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        match append_io() {
            AppendIo::Pwrite => self.pwritev_all(parts, pos),
            AppendIo::Uring => {
                let buf = parts.concat();
                let len = buf.len();
                if len == 0 {
                    return Ok(());
                }
                let written = self
                    .file
                    .write_at(buf, pos)
                    .await
                    .map_err(|e| io_err("write", &self.path, e))?;
                if written < len {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!(
                            "write {}: short write, {written} of {len} bytes at {pos}",
                            self.path.display()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// `pwritev` of all of `parts` on the calling (shard) thread, resuming after short writes
    /// and retrying on EINTR.
    fn pwritev_all(&self, parts: &[&[u8]], pos: u64) -> io::Result<()> {
        use crate::runtime::iovec::Cursor;
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor belongs to `self.file`, which outlives this call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.file.as_raw_fd()) };
        let mut cursor = Cursor::start(parts);
        let mut at = pos;
        while !cursor.done(parts) {
            let offset = i64::try_from(at).map_err(io::Error::other)?;
            let written = match nix::sys::uio::pwritev(fd, &cursor.remaining(parts), offset) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    let inner = io::Error::from(e);
                    return Err(io::Error::new(
                        inner.kind(),
                        format!("write {}: {inner}", self.path.display()),
                    ));
                }
            };
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("write {}: no progress at {at}", self.path.display()),
                ));
            }
            at += written as u64;
            cursor.advance(parts, written);
        }
        Ok(())
    }

    /// Asks the kernel to start writing `len` bytes at `pos` to disk, without waiting for it
    /// (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`; see [`set_writeback_bytes`]). Not a
    /// durability point: it neither waits nor flushes metadata or the device cache.
    pub fn start_writeback(&self, pos: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(nbytes)) = (libc::off64_t::try_from(pos), libc::off64_t::try_from(len))
        else {
            return Err(io::Error::other("writeback range out of bounds"));
        };
        // SAFETY: plain syscall on a descriptor owned by `self.file`, no memory is passed.
        let rc = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                nbytes,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(
                err.kind(),
                format!("sync_file_range {}: {err}", self.path.display()),
            ));
        }
        Ok(())
    }

    /// Drops the clean cached pages of `len` bytes at `pos` (see [`drop_cached`]).
    pub fn drop_cached(&self, pos: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor belongs to `self.file`, which outlives this call.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.file.as_raw_fd()) };
        drop_cached(fd, pos, len).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("posix_fadvise {}: {e}", self.path.display()),
            )
        })
    }

    /// Write a small buffer (index entries, markers) completely, resuming after short writes.
    /// Copies the remainder on each retry, which is fine for the few bytes this is used for.
    pub async fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if append_io() == AppendIo::Pwrite {
            return self.pwritev_all(&[buf], pos);
        }
        let mut done = 0usize;
        while done < buf.len() {
            let at = pos + done as u64;
            let written = self
                .file
                .write_at(buf[done..].to_vec(), at)
                .await
                .map_err(|e| io_err("write", &self.path, e))?;
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("write {}: no progress at {at}", self.path.display()),
                ));
            }
            done += written;
        }
        Ok(())
    }

    /// Read up to `len` bytes at `pos`. Returns fewer bytes only at end of file.
    ///
    /// What the page cache holds is copied straight into the result on the shard's thread
    /// (`preadv2` with `RWF_NOWAIT`, which never waits for the disk); only the rest, if any, goes
    /// through io_uring. Log reads are mostly of recently written, cached data, so this saves an
    /// io_uring round trip and a copy out of glommio's read buffer per fetch.
    pub async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let mut out: Vec<u8> = Vec::with_capacity(len);
        let cached = self.read_cached(pos, len, &mut out)?;
        if cached == len {
            return Ok(Bytes::from(out));
        }
        let mut pos = pos + cached as u64;
        while out.len() < len {
            let want = len - out.len();
            let chunk = self
                .file
                .read_at(pos, want)
                .await
                .map_err(|e| io_err("read", &self.path, e))?;
            if chunk.is_empty() {
                break; // EOF
            }
            out.extend_from_slice(&chunk);
            pos += chunk.len() as u64;
        }
        Ok(Bytes::from(out))
    }

    /// Appends up to `len` bytes at `pos` to `out` from the page cache without blocking: stops at end of
    /// file, at the first page that is not cached (`EAGAIN`), or where the kernel has no
    /// `RWF_NOWAIT` (`EOPNOTSUPP`/`ENOSYS`: the caller's io_uring read does it all). Returns the
    /// bytes added.
    fn read_cached(&self, pos: u64, len: usize, out: &mut Vec<u8>) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let start = out.len();
        out.reserve(len);
        while out.len() - start < len {
            let want = len - (out.len() - start);
            let spare = out.spare_capacity_mut();
            let iov = libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len().min(want),
            };
            let at = pos + (out.len() - start) as u64;
            let offset = libc::off_t::try_from(at).map_err(io::Error::other)?;
            // SAFETY: `iov` describes the vector's spare capacity, valid for writes of `iov_len`
            // bytes while `out` is borrowed here; the descriptor belongs to `self.file`. The
            // kernel reports how many bytes it initialised, and only those are exposed below.
            let n =
                unsafe { libc::preadv2(self.file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
            if n < 0 {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => {
                        Ok(out.len() - start)
                    }
                    _ => Err(io::Error::new(
                        err.kind(),
                        format!("read {}: {err}", self.path.display()),
                    )),
                };
            }
            if n == 0 {
                break; // end of file
            }
            // SAFETY: the kernel initialised `n` (<= spare capacity) bytes after `out.len()`.
            unsafe { out.set_len(out.len() + n as usize) };
        }
        Ok(out.len() - start)
    }

    /// Read exactly `len` bytes at `pos`; `UnexpectedEof` if the file is shorter.
    pub async fn read_exact_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        let b = self.read_at(pos, len).await?;
        if b.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read {}: wanted {len} bytes at {pos}, file ends after {}",
                    self.path.display(),
                    b.len()
                ),
            ));
        }
        Ok(b)
    }

    /// Flush written data (and the metadata needed to read it back, e.g. size) to the device.
    pub async fn fdatasync(&self) -> io::Result<()> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| io_err("fdatasync", &self.path, e))
    }

    /// Set the file length to `len` (shrinks or zero-extends).
    pub async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| io_err("truncate", &self.path, e))
    }

    /// Current size of the file in bytes, as the kernel sees it.
    pub async fn file_size(&self) -> io::Result<u64> {
        self.file
            .file_size()
            .await
            .map_err(|e| io_err("stat", &self.path, e))
    }

    /// Reserve disk blocks for the first `size` bytes without changing the visible length.
    pub async fn pre_allocate(&self, size: u64) -> io::Result<()> {
        self.file
            .pre_allocate(size, true)
            .await
            .map_err(|e| io_err("fallocate", &self.path, e))
    }

    /// Unlink the file. Open descriptors (this one, and clones held by readers) stay readable.
    pub async fn remove(&self) -> io::Result<()> {
        self.file
            .remove()
            .await
            .map_err(|e| io_err("remove", &self.path, e))
    }

    /// Close the descriptor, reporting errors (dropping also closes, but silently).
    pub async fn close(self) -> io::Result<()> {
        let path = self.path;
        self.file
            .close()
            .await
            .map_err(|e| io_err("close", &path, e))
    }
}

/// An async mutual-exclusion lock for one shard (FIFO, not `Send`), used to serialize appends,
/// rolls and retention of one partition log while reads proceed without waiting.
///
/// Invariant: at most one [`SerialGuard`] of a given lock is alive at any time; waiters are
/// served in arrival order.
#[derive(Debug)]
pub struct SerialLock {
    sem: glommio::sync::Semaphore,
}

/// Held while a serialized section runs; releases the [`SerialLock`] on drop.
#[derive(Debug)]
pub struct SerialGuard<'a> {
    _permit: glommio::sync::Permit<'a>,
}

impl Default for SerialLock {
    fn default() -> Self {
        Self::new()
    }
}

impl SerialLock {
    /// A new, unlocked lock.
    pub fn new() -> Self {
        SerialLock {
            sem: glommio::sync::Semaphore::new(1),
        }
    }

    /// Wait for the lock. Fails only if the lock was closed (never done here), as `io::Error`.
    pub async fn lock(&self) -> io::Result<SerialGuard<'_>> {
        let permit = self.sem.acquire_permit(1).await.map_err(|e| {
            let inner: io::Error = e.into();
            io::Error::new(inner.kind(), format!("serial lock: {inner}"))
        })?;
        Ok(SerialGuard { _permit: permit })
    }
}

thread_local! {
    /// The executor [`run_local`] runs on: one per thread, made on first use. Making one per
    /// call leaks a few descriptors in glommio each time (a fuzz target running a million
    /// inputs ran out of them), and costs an io_uring setup per call.
    static LOCAL_EXECUTOR: glommio::LocalExecutor = {
        #[allow(clippy::expect_used)]
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .make()
            .expect("failed to build a glommio LocalExecutor")
    };
}

/// Run `f` to completion on this thread's glommio executor (not from inside one).
///
/// Meant for tests and tools: 1 MiB of io_uring memory so that many executors (parallel tests)
/// fit in the default 8 MiB locked-memory limit. Panics if the executor cannot be built, which
/// in a test is the right outcome.
pub fn run_local<F: Future>(f: F) -> F::Output {
    LOCAL_EXECUTOR.with(|ex| ex.run(f))
}

/// Renames `from` to `to` (through io_uring: never a blocking `rename` on a shard).
pub async fn rename(from: &Path, to: &Path) -> io::Result<()> {
    glommio::io::rename(from, to)
        .await
        .map_err(|e| io_err("rename", from, e))
}

/// Runs `f` on the executor's blocking-thread pool and waits for it, so a call with no
/// io_uring form (`remove_dir_all`, `read_dir`) never stalls the shard's other tasks.
pub async fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    glommio::executor().spawn_blocking(f).await
}

/// fsyncs a directory so that entries created, renamed or removed in it survive a crash. glommio
/// has no directory fsync, so it runs on the blocking-thread pool: a device flush must never
/// stall the shard.
pub async fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    blocking(move || sync_dir_now(&dir)).await
}

/// [`sync_dir`] on the calling thread (only where the shard serves nothing meanwhile, e.g. a
/// clean shutdown, or already on the blocking pool).
pub fn sync_dir_now(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Replaces the file at `path` with `bytes` so that a crash leaves the old file or the new one,
/// never a mix: written to `<path>.tmp`, fdatasync-ed, renamed over `path`, and the directory
/// synced. Blocking: call it on the blocking-thread pool.
pub fn replace_file_now(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let with = |e: io::Error, op: &str, p: &Path| {
        io::Error::new(e.kind(), format!("{op} {}: {e}", p.display()))
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| with(e, "creating", &tmp))?;
        std::io::Write::write_all(&mut f, bytes)
            .and_then(|()| f.sync_data())
            .map_err(|e| with(e, "writing", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| with(e, "renaming", &tmp))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir_now(dir).map_err(|e| with(e, "syncing", dir))
}

/// Removes the file at `path` (through io_uring: never a blocking `unlink` on a shard). A file
/// that is already gone counts as removed.
pub async fn remove_file(path: &Path) -> io::Result<()> {
    match glommio::io::remove(path).await {
        Ok(()) => Ok(()),
        Err(e) => match io_err("remove", path, e) {
            e if e.kind() == io::ErrorKind::NotFound => Ok(()),
            e => Err(e),
        },
    }
}

/// A byte range of an open log file, as a fetch response may send it: straight from the page
/// cache to the socket (sendfile) instead of through a user-space buffer.
///
/// The descriptor is a `dup` owned by the slice (shared through the `Arc`), so it stays valid
/// while a response is being written even if retention closes and unlinks the segment meanwhile
/// (an unlinked file stays readable through open descriptors). `Send`, so a slice read on the
/// partition's shard can travel to the connection's shard.
#[derive(Debug, Clone)]
pub struct FileSlice {
    pub fd: std::sync::Arc<std::os::fd::OwnedFd>,
    pub pos: u64,
    pub len: usize,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// How many of the pages of `path` in `[from, to)` are in the page cache (`mincore`).
    pub(crate) fn resident_pages(path: &Path, from: u64, to: u64) -> usize {
        use std::os::fd::AsRawFd;
        let page = 4096u64;
        let (from, to) = (from / page * page, to.div_ceil(page) * page);
        let file = std::fs::File::open(path).unwrap();
        let len = (to - from) as usize;
        let mut vec = vec![0u8; len / page as usize];
        // SAFETY: a read-only shared mapping of a range inside the file, unmapped before returning;
        // `vec` has one byte per page of it, as mincore requires. Nothing reads the mapping.
        unsafe {
            let addr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                from as libc::off_t,
            );
            assert_ne!(addr, libc::MAP_FAILED);
            assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
            libc::munmap(addr, len);
        }
        vec.iter().filter(|b| *b & 1 == 1).count()
    }

    #[test]
    fn vectored_write_lands_every_part_in_order_beyond_the_iovec_limit() {
        // 2,500 parts (more than one pwritev takes), some empty, written after existing bytes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let parts: Vec<Vec<u8>> = (0..2500u32)
            .map(|i| vec![(i % 251) as u8; (i % 7) as usize])
            .collect();
        let slices: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
        run_local(async {
            let f = LogFile::open(&path).await.unwrap();
            f.write_all_at(b"head", 0).await.unwrap();
            f.write_vectored_at(&slices, 4).await.unwrap();
        });
        let mut expected = b"head".to_vec();
        expected.extend(parts.concat());
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
