//! Responses as a list of parts, so record data is written to the socket from where it already
//! is (a reference-counted buffer, or a range of a log file) instead of being copied into one
//! contiguous encode buffer.
//!
//! # How it stays a normal kafka-protocol encode
//! The body is still encoded by kafka-protocol, into a [`PartsBuf`]: a `ByteBufMut` that copies
//! everything the codec writes (lengths, headers, fields) except the record blobs registered with
//! it beforehand. When the codec writes a slice that is exactly the next registered blob (same
//! address, same length), the buffer keeps a [`Part`] pointing at it instead of copying. Record
//! data that lives in a file is represented during the encode by a *placeholder*: a slice of a
//! large zeroed allocation that is never read, registered with the file range it stands for. The
//! bytes on the wire are therefore identical to a plain encode, and every length and varint is
//! still computed by the codec.
//!
//! A placeholder that is not matched in order (which would put zeros on the wire) marks the
//! buffer failed, and the response is refused rather than sent.

use std::collections::VecDeque;
use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

use crate::runtime::file::FileSlice;

/// One piece of a response on the wire.
#[derive(Debug, Clone)]
pub enum Part {
    Bytes(Bytes),
    File(FileSlice),
}

impl Part {
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete response frame (size prefix included), in parts.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub parts: Vec<Part>,
}

impl Response {
    pub fn from_bytes(b: Bytes) -> Response {
        Response {
            parts: vec![Part::Bytes(b)],
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Part::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Record data of one partition in a response: in memory, or a range of a log file.
#[derive(Debug, Clone)]
pub enum Records {
    Mem(Bytes),
    File(FileSlice),
}

impl Default for Records {
    fn default() -> Self {
        Records::Mem(Bytes::new())
    }
}

impl Records {
    pub fn len(&self) -> usize {
        match self {
            Records::Mem(b) => b.len(),
            Records::File(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The largest file range one placeholder can stand for. Larger ranges must be read into memory
/// (fetch responses are capped well below this by `fetch.max.bytes`).
pub const MAX_PLACEHOLDER: usize = 64 << 20;

/// A zeroed region that placeholders point into. Allocated zeroed and never written or read, so
/// the kernel never backs it with memory: it only provides addresses.
fn zeros() -> &'static [u8] {
    static ZEROS: OnceLock<Box<[u8]>> = OnceLock::new();
    ZEROS.get_or_init(|| vec![0u8; MAX_PLACEHOLDER].into_boxed_slice())
}

/// Below this size a blob is cheaper to copy than to carry as its own part (one more iovec).
const MIN_SHARED: usize = 512;

/// A `ByteBufMut` that copies what the codec writes, except registered blobs, which become parts.
#[derive(Debug)]
pub struct PartsBuf {
    parts: Vec<Part>,
    /// What the codec wrote since the last part; becomes a `Part::Bytes` when a blob follows.
    current: BytesMut,
    /// Bytes in `parts` (for `offset`).
    flushed: usize,
    /// Blobs expected, in encode order: (address, length, what to send instead).
    expected: VecDeque<(usize, usize, Part)>,
    failed: bool,
}

impl PartsBuf {
    pub fn with_capacity(cap: usize) -> PartsBuf {
        PartsBuf {
            parts: Vec::new(),
            current: BytesMut::with_capacity(cap),
            flushed: 0,
            expected: VecDeque::new(),
            failed: false,
        }
    }

    /// The value to put in the message for `records` and, when the encode should not copy it,
    /// registers what the buffer sends instead. Call in the order the codec will encode them.
    /// Returns `None` for a file range too large for a placeholder (read it into memory).
    pub fn register(&mut self, records: Records) -> Option<Bytes> {
        match records {
            Records::Mem(b) => {
                if b.len() >= MIN_SHARED {
                    self.expected
                        .push_back((b.as_ptr() as usize, b.len(), Part::Bytes(b.clone())));
                }
                Some(b)
            }
            Records::File(f) => {
                if f.len > MAX_PLACEHOLDER {
                    return None;
                }
                let placeholder = &zeros()[..f.len];
                if f.len > 0 {
                    self.expected
                        .push_back((placeholder.as_ptr() as usize, f.len, Part::File(f)));
                }
                Some(Bytes::from_static(placeholder))
            }
        }
    }

    /// The parts, or an error if a registered blob was not written in order (or the codec asked
    /// for something this buffer cannot do). Every registered blob must have been consumed.
    pub fn finish(mut self) -> anyhow::Result<Response> {
        if self.failed || !self.expected.is_empty() {
            anyhow::bail!("response encode did not consume its record parts in order");
        }
        if !self.current.is_empty() {
            self.parts.push(Part::Bytes(self.current.split().freeze()));
        }
        Ok(Response { parts: self.parts })
    }

    fn push_part(&mut self, part: Part) {
        if !self.current.is_empty() {
            let head = self.current.split().freeze();
            self.flushed += head.len();
            self.parts.push(Part::Bytes(head));
        }
        self.flushed += part.len();
        self.parts.push(part);
    }
}

// SAFETY: every method delegates to the `BytesMut` holding the bytes written since the last part,
// which upholds `BufMut`'s contract; `put_slice` only adds bookkeeping before delegating.
unsafe impl BufMut for PartsBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded contract: the caller initialised `cnt` bytes of `chunk_mut`.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some((addr, len, _)) = self.expected.front() {
            if *addr == src.as_ptr() as usize && *len == src.len() {
                if let Some((_, _, part)) = self.expected.pop_front() {
                    self.push_part(part);
                }
                return;
            }
        }
        if is_placeholder(src) {
            // A placeholder out of order: copying it would send zeros instead of records.
            self.failed = true;
            return;
        }
        self.current.extend_from_slice(src);
    }
}

fn is_placeholder(src: &[u8]) -> bool {
    let z = zeros().as_ptr_range();
    !src.is_empty() && z.contains(&src.as_ptr())
}

impl ByteBufMut for PartsBuf {
    fn offset(&self) -> usize {
        self.flushed + self.current.len()
    }

    // Seeking and patching are used by kafka-protocol only when building record batches, never
    // for response messages; they are supported within the bytes since the last part, and
    // anything else fails the response instead of corrupting it.
    fn seek(&mut self, offset: usize) {
        match offset.checked_sub(self.flushed) {
            Some(rel) => self.current.resize(rel, 0),
            None => self.failed = true,
        }
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let rel = r.start.checked_sub(self.flushed).and_then(|s| {
            let e = r.end.checked_sub(self.flushed)?;
            (s <= e && e <= self.current.len()).then_some(s..e)
        });
        match rel {
            Some(rel) => &mut self.current[rel],
            None => {
                self.failed = true;
                let len = r.end.saturating_sub(r.start);
                // Scratch space nobody reads: the response is refused in `finish`.
                self.current.resize(self.current.len() + len, 0);
                let end = self.current.len();
                &mut self.current[end - len..]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::protocol::Encodable;

    fn response_with(records: Vec<Bytes>) -> FetchResponse {
        let mut t = FetchableTopicResponse::default();
        for (i, r) in records.into_iter().enumerate() {
            let mut p = PartitionData::default();
            p.partition_index = i as i32;
            p.records = Some(r);
            t.partitions.push(p);
        }
        let mut resp = FetchResponse::default();
        resp.responses.push(t);
        resp
    }

    fn flatten(r: &Response, file_bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &r.parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::File(f) => {
                    out.extend_from_slice(&file_bytes[f.pos as usize..f.pos as usize + f.len])
                }
            }
        }
        out
    }

    fn test_fd() -> std::sync::Arc<std::os::fd::OwnedFd> {
        let f = tempfile::tempfile().expect("tempfile");
        std::sync::Arc::new(std::os::fd::OwnedFd::from(f))
    }

    #[test]
    fn parts_are_byte_identical_to_a_plain_encode() {
        let file: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mem = Bytes::from(vec![7u8; 4096]);
        let small = Bytes::from_static(b"tiny");
        for version in [4i16, 11, 12, 13, 16] {
            let fd = test_fd();
            let slice = FileSlice {
                fd,
                pos: 100,
                len: 5000,
            };
            let mut buf = PartsBuf::with_capacity(64);
            let a = buf.register(Records::Mem(mem.clone())).expect("mem");
            let b = buf.register(Records::File(slice)).expect("file");
            let c = buf.register(Records::Mem(small.clone())).expect("small");
            let d = buf.register(Records::Mem(Bytes::new())).expect("empty");
            let with_parts = response_with(vec![a, b, c, d]);
            with_parts.encode(&mut buf, version).expect("encode");
            let parts = buf.finish().expect("finish");
            assert_eq!(parts.parts.len(), 5, "head, mem, middle, file, tail");

            let plain = response_with(vec![
                mem.clone(),
                Bytes::copy_from_slice(&file[100..5100]),
                small.clone(),
                Bytes::new(),
            ]);
            let mut expected = BytesMut::new();
            plain.encode(&mut expected, version).expect("encode");
            assert_eq!(flatten(&parts, &file), expected.to_vec(), "v{version}");
            assert_eq!(parts.len(), expected.len());
        }
    }

    #[test]
    fn a_placeholder_out_of_order_fails_instead_of_sending_zeros() {
        let mut buf = PartsBuf::with_capacity(64);
        let p1 = buf
            .register(Records::File(FileSlice {
                fd: test_fd(),
                pos: 0,
                len: 10,
            }))
            .expect("p1");
        let p2 = buf
            .register(Records::File(FileSlice {
                fd: test_fd(),
                pos: 0,
                len: 20,
            }))
            .expect("p2");
        // Encoded in the wrong order.
        response_with(vec![p2, p1])
            .encode(&mut buf, 12)
            .expect("encode");
        assert!(buf.finish().is_err());
    }

    #[test]
    fn an_unconsumed_registration_fails() {
        let mut buf = PartsBuf::with_capacity(64);
        let _ = buf.register(Records::Mem(Bytes::from(vec![1u8; 1000])));
        response_with(vec![]).encode(&mut buf, 12).expect("encode");
        assert!(buf.finish().is_err());
    }

    #[test]
    fn oversized_file_ranges_are_refused() {
        let mut buf = PartsBuf::with_capacity(64);
        let r = buf.register(Records::File(FileSlice {
            fd: test_fd(),
            pos: 0,
            len: MAX_PLACEHOLDER + 1,
        }));
        assert!(r.is_none());
    }
}
