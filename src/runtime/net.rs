//! TCP for shard code: a listener per shard (SO_REUSEPORT, so the kernel spreads connections over
//! the shards' accept loops) and a connection type with the few operations the server needs.

use std::io;
use std::net::SocketAddr;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

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

/// One client connection, used by one task at a time.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream.peer_addr().ok()
    }

    /// Fills `buf` completely; `UnexpectedEof` if the peer closed first.
    pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.stream.read_exact(buf).await
    }

    /// Reads what is available (at least one byte unless the peer closed: then 0).
    pub async fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
    }

    /// Writes every byte of each slice, in order.
    pub async fn write_all_vectored(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        for p in parts {
            self.stream.write_all(p).await?;
        }
        self.stream.flush().await
    }
}
