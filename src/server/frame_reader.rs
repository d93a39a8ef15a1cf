//! Buffered reading of request frames from a connection.
//!
//! Reads as much as the socket has (one `recv` often brings several small requests, or a whole
//! large one) and cuts complete frames out of the buffer. It can also look for a next frame
//! *without waiting* ([`FrameReader::try_next`]), which lets a connection pick up a client's
//! pipelined request while an earlier one waits for its sync.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::runtime::budget::{BudgetPermit, ByteBudget};
use crate::runtime::net::Conn;
use crate::wire::frame::check_size;

/// Smallest read step. Memory grows with what the peer actually sends, not with what its size
/// prefix claims: each step is at most the larger of this, what is already buffered, and
/// [`EAGER_FRAME`].
const READ_CHUNK: usize = 64 * 1024;

/// Room given at once to a frame whose size prefix has arrived, up to its size. Growing a 1 MB
/// produce request (librdkafka's default batch size) by doubling from `READ_CHUNK` copied the
/// received bytes at every step (~1 MB of memmove per MB received); a frame up to this size now
/// gets its whole room in one step. The price is bounded: a peer that announces a large frame
/// and sends nothing holds at most this much.
const EAGER_FRAME: usize = 1024 * 1024;

/// Why no frame can be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed or the socket failed.
    Io(std::io::Error),
    /// A size prefix that is negative or above `socket.request.max.bytes`.
    BadSize(i32),
}

/// A request frame (without its size prefix) and the bytes it holds of the shard's
/// `queued.max.request.bytes` budget (returned when the frame's request is answered).
pub struct Frame {
    pub bytes: Bytes,
    pub permit: Option<BudgetPermit>,
}

/// A buffer this much larger than what it still holds is given back once a frame is cut out of
/// it, so one large request does not pin its allocation for the connection's life.
const KEEP_CAPACITY: usize = 2 * EAGER_FRAME;

pub struct FrameReader {
    /// Received data; its spare capacity is the (uninitialised) room for the next read, so
    /// received bytes are never zeroed first.
    buf: BytesMut,
    max: usize,
    /// The shard's request-bytes budget, if `queued.max.request.bytes` is set. A frame's bytes
    /// are taken from it as soon as its size prefix is known, before its body is read: past the
    /// budget, the connection is not read (TCP pushes back on the client) instead of buffering.
    budget: Option<Rc<ByteBudget>>,
    /// The budget held for the frame at the front of `buf`.
    permit: Option<BudgetPermit>,
}

impl FrameReader {
    pub fn new(max: usize, budget: Option<Rc<ByteBudget>>) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            max,
            budget,
            permit: None,
        }
    }

    /// The next complete frame, waiting for the peer (and for the budget) as needed.
    pub async fn next(&mut self, conn: &mut Conn) -> Result<Frame, ReadError> {
        loop {
            if let (Some(len), None, Some(budget)) = (self.front_len()?, &self.permit, &self.budget)
            {
                self.permit = budget.acquire(4 + len as u64).await;
            }
            if let Some(frame) = self.take()? {
                return Ok(frame);
            }
            self.grow();
            let n = conn
                .read_some_uninit(self.buf.spare_capacity_mut())
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            // SAFETY: `recv` wrote `n` bytes into the spare capacity.
            unsafe { self.received(n) };
        }
    }

    /// A complete frame if one is buffered or already waiting in the socket and the budget has
    /// room for it now; `None` otherwise (never waits).
    pub fn try_next(&mut self, conn: &Conn) -> Result<Option<Frame>, ReadError> {
        loop {
            if let (Some(len), None, Some(budget)) = (self.front_len()?, &self.permit, &self.budget)
            {
                match budget.try_acquire(4 + len as u64) {
                    Some(p) => self.permit = Some(p),
                    None => return Ok(None),
                }
            }
            if let Some(frame) = self.take()? {
                return Ok(Some(frame));
            }
            self.grow();
            match conn
                .try_read_uninit(self.buf.spare_capacity_mut())
                .map_err(ReadError::Io)?
            {
                None => return Ok(None),
                Some(0) => return Err(ReadError::Io(std::io::ErrorKind::UnexpectedEof.into())),
                // SAFETY: `recv` wrote `n` bytes into the spare capacity.
                Some(n) => unsafe { self.received(n) },
            }
        }
    }

    /// The body length of the frame at the front, once its size prefix is buffered.
    fn front_len(&self) -> Result<Option<usize>, ReadError> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let prefix = [prefix[0], prefix[1], prefix[2], prefix[3]];
        match check_size(prefix, self.max) {
            Some(len) => Ok(Some(len)),
            None => Err(ReadError::BadSize(i32::from_be_bytes(prefix))),
        }
    }

    /// Cuts the first frame out of the buffer if it is complete (and, with a budget, paid for).
    fn take(&mut self) -> Result<Option<Frame>, ReadError> {
        let Some(len) = self.front_len()? else {
            return Ok(None);
        };
        if self.buf.len() < 4 + len || (self.budget.is_some() && self.permit.is_none()) {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(4 + len);
        let _ = frame.split_to(4);
        if self.buf.capacity() > KEEP_CAPACITY && self.buf.len() < READ_CHUNK {
            // What follows the frame moves to a small buffer of its own; the big allocation
            // is freed once the frame is answered.
            self.buf = BytesMut::from(&self.buf[..]);
        }
        Ok(Some(Frame {
            bytes: frame.freeze(),
            permit: self.permit.take(),
        }))
    }

    /// Makes sure there is room after the received bytes: at least `READ_CHUNK`, growing with
    /// what was received (at most doubling), and no more than the frame being received still
    /// needs (plus one chunk for what follows it).
    fn grow(&mut self) {
        let filled = self.buf.len();
        if let (Some(_), Some(len)) = (&self.permit, self.front_len().ok().flatten()) {
            // The frame's bytes are paid for: give it its whole room at once instead of growing
            // by steps (each step reallocates and copies, briefly holding twice the bytes).
            let needed = (4 + len + READ_CHUNK).saturating_sub(filled);
            if self.buf.capacity() - filled < needed {
                self.buf.reserve(needed);
            }
            return;
        }
        if self.buf.capacity() - filled >= READ_CHUNK {
            return;
        }
        let mut step = READ_CHUNK.max(filled);
        if let Some(p) = self.buf.get(..4) {
            let len = i32::from_be_bytes([p[0], p[1], p[2], p[3]]).max(0) as usize;
            let needed = (4 + len).saturating_sub(filled);
            step = step.max(needed.min(EAGER_FRAME));
            step = step.min(needed.max(READ_CHUNK));
        }
        self.buf.reserve(step);
    }

    /// Counts `n` bytes just received into the spare capacity as data.
    ///
    /// # Safety
    /// The first `n` bytes of `self.buf.spare_capacity_mut()` must have been initialised (a
    /// successful `recv` of `n` bytes into it does that).
    unsafe fn received(&mut self, n: usize) {
        let filled = self.buf.len();
        debug_assert!(
            n <= self.buf.capacity() - filled,
            "a read cannot exceed its room"
        );
        // SAFETY: the caller guarantees the `n` bytes after the data are initialised.
        unsafe { self.buf.set_len(filled + n) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_with(bytes: &[u8], max: usize) -> FrameReader {
        let mut r = FrameReader::new(max, None);
        r.buf.extend_from_slice(bytes);
        r.grow(); // the room after the data must not count as data
        r
    }

    /// Room for the next read.
    fn room(r: &FrameReader) -> usize {
        r.buf.capacity() - r.buf.len()
    }

    #[test]
    fn frames_are_cut_at_their_size_prefix() {
        let mut r = reader_with(&[0, 0, 0, 2, 7, 8, 0, 0, 0, 1, 9, 0, 0], 100);
        assert_eq!(&r.take().unwrap().unwrap().bytes[..], &[7, 8]);
        assert_eq!(&r.take().unwrap().unwrap().bytes[..], &[9]);
        assert!(
            r.take().unwrap().is_none(),
            "a partial prefix is not a frame"
        );
    }

    #[test]
    fn a_partial_body_waits_and_a_bad_size_is_refused() {
        let mut r = reader_with(&[0, 0, 0, 5, 1, 2], 100);
        assert!(r.take().unwrap().is_none());
        let mut r = reader_with(&[0xff, 0xff, 0xff, 0xff], 100);
        assert!(matches!(r.take(), Err(ReadError::BadSize(-1))));
        let mut r = reader_with(&[0, 0, 1, 0], 100);
        assert!(matches!(r.take(), Err(ReadError::BadSize(256))));
    }

    #[test]
    fn a_frame_up_to_a_megabyte_gets_its_room_at_once_and_a_bigger_one_grows() {
        let max = 100 << 20;
        // 600 KB announced, 10 bytes received: room for the whole frame in one step.
        let mut data = (600_000u32).to_be_bytes().to_vec();
        data.extend_from_slice(&[1; 10]);
        let r = reader_with(&data, max);
        assert!((600_000 - 10..600_000 - 10 + READ_CHUNK).contains(&room(&r)));
        // 50 MB announced, 10 bytes received: only EAGER_FRAME of room, not 50 MB.
        let mut data = (50_000_000u32).to_be_bytes().to_vec();
        data.extend_from_slice(&[1; 10]);
        let r = reader_with(&data, max);
        assert!((EAGER_FRAME..2 * EAGER_FRAME).contains(&room(&r)));
        // A small frame gets the usual chunk, no more than it needs plus what follows.
        let r = reader_with(&[0, 0, 0, 5, 1], max);
        assert!((READ_CHUNK..2 * READ_CHUNK).contains(&room(&r)));
    }

    #[test]
    fn bytes_received_into_the_room_complete_a_frame() {
        let mut r = reader_with(&[0, 0, 0, 3, 1], 100);
        for (slot, b) in r.buf.spare_capacity_mut().iter_mut().zip([2u8, 3, 0, 0]) {
            slot.write(b);
        }
        // SAFETY: the four bytes were just written.
        unsafe { r.received(4) };
        assert_eq!(&r.take().unwrap().unwrap().bytes[..], &[1, 2, 3]);
        assert_eq!(&r.buf[..], &[0, 0], "what follows the frame stays buffered");
    }

    #[test]
    fn a_large_frame_does_not_pin_its_buffer() {
        let len = 3 * EAGER_FRAME;
        let mut data = (len as u32).to_be_bytes().to_vec();
        data.extend(std::iter::repeat_n(5u8, len));
        data.extend_from_slice(&[0, 0, 0, 1, 9]);
        let mut r = reader_with(&data, 100 << 20);
        let frame = r.take().unwrap().unwrap();
        assert_eq!(frame.bytes.len(), len);
        assert!(r.buf.capacity() < KEEP_CAPACITY, "{}", r.buf.capacity());
        assert_eq!(&r.take().unwrap().unwrap().bytes[..], &[9]);
    }

    #[test]
    fn with_a_budget_a_frame_waits_for_its_bytes() {
        crate::runtime::file::run_local(async {
            let budget = Rc::new(ByteBudget::new(10));
            let mut r = FrameReader::new(100, Some(budget.clone()));
            r.buf.extend_from_slice(&[0, 0, 0, 2, 7, 8]);
            // Not paid for yet: take() refuses, try_next's path pays first.
            assert!(r.take().unwrap().is_none());
            let hold = budget.acquire(10).await.unwrap();
            assert!(budget.try_acquire(6).is_none());
            drop(hold);
            r.permit = budget.try_acquire(6);
            let f = r.take().unwrap().unwrap();
            assert_eq!(&f.bytes[..], &[7, 8]);
            assert_eq!(budget.available(), 4);
            drop(f);
            assert_eq!(budget.available(), 10);
        });
    }
}
