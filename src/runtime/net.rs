//! TCP for shard code: a listener per shard (SO_REUSEPORT, so the kernel spreads connections over
//! the shards' accept loops) and a connection type with the few operations the server needs.

use std::io;
use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::runtime::iovec::Cursor;

/// A listening socket owned by one shard.
pub struct Listener {
    inner: TcpListener,
}

impl Listener {
    /// Binds `addr` with SO_REUSEPORT (glommio sets it), so every shard can bind the same address.
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        TcpListener::bind(addr)
            .map(|inner| Listener { inner })
            .map_err(|e| io::Error::new(io::ErrorKind::AddrInUse, format!("binding {addr}: {e}")))
    }

    /// Binds `addr` *without* SO_REUSEPORT, so it fails if anything else listens there (for
    /// single-listener endpoints such as metrics, where sharing a port would split traffic
    /// between processes silently).
    pub fn bind_exclusive(addr: SocketAddr) -> io::Result<Listener> {
        use std::os::fd::{FromRawFd, IntoRawFd};
        let std_listener = std::net::TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
        let fd = std_listener.into_raw_fd();
        // SAFETY: `fd` is a bound, listening TCP socket whose ownership `into_raw_fd` released;
        // the glommio listener takes it over and closes it on drop.
        let inner = unsafe { TcpListener::from_raw_fd(fd) };
        Ok(Listener { inner })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner
            .local_addr()
            .map_err(|e| io::Error::other(e.to_string()))
    }

    pub async fn accept(&self) -> io::Result<Conn> {
        let stream = self
            .inner
            .accept()
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        // Kafka responses are small and latency-sensitive; never wait for Nagle.
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream })
    }
}

/// Connects to `addr`, giving up after `timeout`.
pub async fn connect(addr: SocketAddr, timeout: std::time::Duration) -> io::Result<Conn> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| io::Error::other(format!("connecting to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(Conn { stream })
}

/// One client connection, used by one task at a time.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// The socket's descriptor, for system calls glommio does not offer (`sendfile`, see
    /// [`crate::runtime::sendfile`]). Valid while `self` lives. The socket is in *blocking*
    /// mode (glommio passes `MSG_DONTWAIT` per call instead): a raw call that may wait must
    /// make itself non-blocking, or it stalls the whole shard.
    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Writes every byte of `buf`, waiting (in io_uring, not on the thread) while the socket's
    /// send buffer is full.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf).await
    }

    /// Fills `buf` completely; `UnexpectedEof` if the peer closed first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.stream.read_exact(buf).await
    }

    /// Reads what the socket already holds without waiting, into room that need not be
    /// initialised (so a reader does not zero its buffer before every receive): `None` if
    /// nothing is there yet, `Some(0)` if the peer closed.
    pub fn try_read_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: `recv` writes at most `buf.len()` bytes into `buf` and never reads it; the
            // descriptor is valid while `self` lives.
            let rc = unsafe {
                libc::recv(
                    self.raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if rc >= 0 {
                return Ok(Some(rc as usize));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    /// Reads what is available into room that need not be initialised, waiting until there is
    /// something (at least one byte unless the peer closed: then 0).
    pub async fn read_some_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        loop {
            if let Some(n) = self.try_read_uninit(buf)? {
                return Ok(n);
            }
            // Wait in io_uring until the socket is readable: a one-byte MSG_PEEK completes when
            // data (or the peer's close) arrives and leaves the data for the `recv` above.
            self.stream.peek(&mut [0u8; 1]).await?;
        }
    }

    /// Completes when the peer closes (or resets) the connection; never completes once the
    /// peer has sent more data instead (that data stays unread, for the next `read`). Raced
    /// against a long-running request, it lets the broker drop work nobody will read.
    pub async fn peer_closed(&mut self) {
        match self.stream.peek(&mut [0u8; 1]).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending::<()>().await,
        }
    }

    /// Reads what is available (at least one byte unless the peer closed: then 0).
    pub async fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    /// Writes every byte of each slice, in order: as few `sendmsg` calls as the socket allows
    /// (one, when its send buffer has room), waiting in io_uring only when it is full.
    pub async fn write_all_vectored(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut cursor = Cursor::start(parts);
        while !cursor.done(parts) {
            let sent = self.try_send_vectored(&cursor.remaining(parts))?;
            cursor.advance(parts, sent);
            if !cursor.done(parts) && sent == 0 {
                // Send buffer full: finish this part with glommio's awaiting write.
                self.stream
                    .write_all(&parts[cursor.index][cursor.skip..])
                    .await?;
                cursor.finish_part(parts);
            }
        }
        self.stream.flush().await
    }

    /// One non-blocking `sendmsg` of `iov`; 0 when the socket cannot take anything now.
    fn try_send_vectored(&self, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        use nix::sys::socket::{sendmsg, MsgFlags, SockaddrStorage};
        loop {
            match sendmsg::<SockaddrStorage>(
                self.raw_fd(),
                iov,
                &[],
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
