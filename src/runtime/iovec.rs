//! Gathered writes of several byte slices in order (`sendmsg`, `pwritev`): which iovecs are left
//! to write, and where a (possibly short) write leaves off. Shared by socket sends and appends.

use std::io::IoSlice;

/// Linux accepts at most this many iovecs per call (UIO_MAXIOV); the rest goes next round.
pub const MAX_IOV: usize = 1024;

/// How far a gathered write of `parts` has got.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// First part not completely written.
    pub index: usize,
    /// Bytes of `parts[index]` already written.
    pub skip: usize,
}

impl Cursor {
    /// A cursor at the start of `parts`, past any leading empty parts.
    pub fn start(parts: &[&[u8]]) -> Cursor {
        let mut c = Cursor::default();
        c.advance(parts, 0);
        c
    }

    /// Whether every byte of `parts` was written.
    pub fn done(&self, parts: &[&[u8]]) -> bool {
        self.index >= parts.len()
    }

    /// The iovecs of what is left (at most [`MAX_IOV`] of them).
    pub fn remaining<'a>(&self, parts: &[&'a [u8]]) -> Vec<IoSlice<'a>> {
        parts[self.index.min(parts.len())..]
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(i, p)| IoSlice::new(if i == 0 { &p[self.skip..] } else { p }))
            .collect()
    }

    /// Moves past `n` more bytes written, and past any empty parts that follow them.
    pub fn advance(&mut self, parts: &[&[u8]], n: usize) {
        let mut left = n;
        while self.index < parts.len() && left >= parts[self.index].len() - self.skip {
            left -= parts[self.index].len() - self.skip;
            self.index += 1;
            self.skip = 0;
        }
        self.skip += left;
    }

    /// Moves past the rest of the current part (written some other way).
    pub fn finish_part(&mut self, parts: &[&[u8]]) {
        self.index += 1;
        self.skip = 0;
        self.advance(parts, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_writes_and_empty_parts_advance_exactly() {
        let parts: [&[u8]; 5] = [b"", b"abc", b"", b"de", b"f"];
        let mut c = Cursor::start(&parts);
        assert_eq!(c, Cursor { index: 1, skip: 0 });
        c.advance(&parts, 2);
        assert_eq!(c, Cursor { index: 1, skip: 2 });
        assert_eq!(&*c.remaining(&parts)[0], b"c");
        c.advance(&parts, 1); // the end of "abc" also passes the empty part after it
        assert_eq!(c, Cursor { index: 3, skip: 0 });
        c.finish_part(&parts);
        assert_eq!(c, Cursor { index: 4, skip: 0 });
        c.advance(&parts, 1);
        assert!(c.done(&parts));
        assert!(c.remaining(&parts).is_empty());
    }

    #[test]
    fn at_most_max_iov_slices_per_call() {
        let parts: Vec<&[u8]> = vec![b"x"; MAX_IOV + 5];
        let mut c = Cursor::start(&parts);
        assert_eq!(c.remaining(&parts).len(), MAX_IOV);
        c.advance(&parts, MAX_IOV);
        assert_eq!(c.remaining(&parts).len(), 5);
    }
}
