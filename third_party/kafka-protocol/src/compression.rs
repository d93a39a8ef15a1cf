//! Provides compression utilities for encoding records.
//!
//! This module has implementations of gzip, Snappy, as well as a noop compression format that
//! allows encoding and decoding records into a [`Record`](crate::records::Record).

use crate::protocol::buf::{ByteBuf, ByteBufMut};
use anyhow::Result;

#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4;
mod none;
#[cfg(feature = "snappy")]
mod snappy;
#[cfg(feature = "zstd")]
mod zstd;

#[cfg(feature = "gzip")]
pub use gzip::Gzip;
#[cfg(feature = "lz4")]
pub use lz4::Lz4;
pub use none::None;
#[cfg(feature = "snappy")]
pub use snappy::Snappy;
#[cfg(feature = "zstd")]
pub use zstd::Zstd;

// SHARDLOG PATCH (see SHARDLOG_PATCH.md): bound decompressed output. Upstream decompressed into
// an unbounded, growing buffer, so a small "decompression bomb" could make the process allocate
// until allocation fails, which aborts.

/// Default for [`max_decompressed_size`]: 128 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_SIZE: usize = 128 << 20;

static MAX_DECOMPRESSED_SIZE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_DECOMPRESSED_SIZE);

/// The largest number of bytes the built-in decompressors will produce for one record batch;
/// decompressing more fails with an error.
pub fn max_decompressed_size() -> usize {
    MAX_DECOMPRESSED_SIZE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set the process-wide limit returned by [`max_decompressed_size`].
pub fn set_max_decompressed_size(limit: usize) {
    MAX_DECOMPRESSED_SIZE.store(limit, std::sync::atomic::Ordering::Relaxed)
}

/// A writer that fails once more than `limit` bytes have been written to it.
#[allow(dead_code)]
pub(crate) struct LimitedWriter<W> {
    inner: W,
    written: usize,
    limit: usize,
}

#[allow(dead_code)]
impl<W> LimitedWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            written: 0,
            limit: max_decompressed_size(),
        }
    }
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: std::io::Write> std::io::Write for LimitedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.limit - self.written {
            return Err(std::io::Error::other(format!(
                "decompressed data exceeds the limit of {} bytes",
                self.limit
            )));
        }
        let n = self.inner.write(buf)?;
        self.written += n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A trait for record compression algorithms.
pub trait Compressor<B: ByteBufMut> {
    /// Target buffer type for compression.
    type BufMut: ByteBufMut;
    /// Compresses into provided [`ByteBufMut`], with records encoded by `F` into `R`.
    fn compress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::BufMut) -> Result<R>;
}

/// A trait for record decompression algorithms.
pub trait Decompressor<B: ByteBuf> {
    /// Target buffer type for decompression.
    type Buf: ByteBuf;
    /// Decompress records from `B` mapped using `F` into `R`.
    fn decompress<R, F>(buf: &mut B, f: F) -> Result<R>
    where
        F: FnOnce(&mut Self::Buf) -> Result<R>;
}
