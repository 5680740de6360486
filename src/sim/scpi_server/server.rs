//! The server side shared by every simulated instrument: TCP accept, in-memory and
//! pseudo-terminal connections, the line loop with its input limit, and the I/O watchdog
//! timer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{lock, push_error, Shared, COMMAND_LOG_LIMIT, MAX_LINE};
use crate::scpi::{Dialect, Transport};
use crate::sim::plant::Plant;
use crate::sim::pty::{open_pty, read_fd, set_nonblocking, tty_name, write_fd};

/// A running simulated instrument; cloning gives another handle to the same instrument.
#[derive(Clone)]
pub struct SimInstrument {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for SimInstrument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimInstrument")
            .field("dialect", &self.shared.dialect.id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// Start serving `dialect` on `listener`, backed by `plant`. The server runs until
/// [`SimInstrument::shutdown`] or until the runtime stops.
pub async fn serve(listener: TcpListener, dialect: Dialect, plant: Plant) -> SimInstrument {
    let local_addr = listener.local_addr().unwrap_or_else(|error| {
        tracing::error!(%error, "simulated instrument listener has no local address");
        SocketAddr::from(([0, 0, 0, 0], 0))
    });
    let shared = Arc::new(Shared::new(
        dialect,
        plant,
        format!("SIM{:06}", local_addr.port()),
        CancellationToken::new(),
    ));
    start_watchdog(&shared);
    tokio::spawn(accept_loop(listener, shared.clone()));
    SimInstrument { shared, local_addr }
}

/// Serve `dialect` backed by `plant` without a socket: reachable only through
/// [`SimInstrument::connect_in_memory`] (for example behind a `mem://` endpoint), so that it
/// runs under a paused, virtual clock. Its `local_addr` is the unspecified address.
pub fn serve_in_memory(dialect: Dialect, plant: Plant) -> SimInstrument {
    static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let shared = Arc::new(Shared::new(
        dialect,
        plant,
        format!("SIMMEM{n:04}"),
        CancellationToken::new(),
    ));
    start_watchdog(&shared);
    SimInstrument {
        shared,
        local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, %peer, "TCP_NODELAY not set");
                }
                tracing::debug!(dialect = %shared.dialect.id, %peer, "simulated instrument: connection");
                let token = lock(&shared.connections).clone();
                let terminator = shared.dialect.terminator.clone();
                tokio::spawn(run_connection(shared.clone(), stream, token, terminator));
            }
            Err(error) => {
                tracing::warn!(%error, "simulated instrument: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Switch every supply output off when the armed I/O watchdog sees no traffic for its delay.
fn start_watchdog(shared: &Arc<Shared>) {
    let has_watchdog = shared.family.watchdog() || shared.dialect.watchdog.is_some();
    if !has_watchdog || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        loop {
            let wait = {
                let state = lock(&shared.state);
                if state.watchdog_on {
                    (state.last_io + state.watchdog_delay).saturating_duration_since(Instant::now())
                } else {
                    Duration::from_millis(200)
                }
            };
            tokio::select! {
                biased;
                _ = shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
            let mut state = lock(&shared.state);
            if state.watchdog_on && Instant::now() >= state.last_io + state.watchdog_delay {
                let mut plant = shared.plant.lock();
                shared.watchdog_trip(&mut state, &mut plant);
                // Trip once per silence: the next traffic re-arms the count.
                state.last_io = Instant::now();
            }
        }
    });
}

impl SimInstrument {
    /// The socket address the instrument listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address to put in a rig file: `tcp://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("tcp://{}", self.local_addr)
    }

    /// The dialect this instrument speaks.
    pub fn dialect(&self) -> &Dialect {
        &self.shared.dialect
    }

    /// The plant this instrument acts on.
    pub fn plant(&self) -> &Plant {
        &self.shared.plant
    }

    /// Answer `*IDN?` with this serial number (e.g. the one in the rig file).
    pub fn set_serial(&self, serial: &str) {
        *lock(&self.shared.serial) = serial.to_string();
    }

    /// The command lines received on any connection, in order, without terminator (the
    /// last [`COMMAND_LOG_LIMIT`] of them, so that long runs stay bounded in memory).
    pub fn command_log(&self) -> Vec<String> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Forget the command lines received so far.
    pub fn clear_command_log(&self) {
        lock(&self.shared.log).clear();
    }

    /// Queue an instrument error, so the next error-queue check reports it.
    pub fn inject_error(&self, code: i32, message: &str) {
        push_error(&mut lock(&self.shared.state), code, message);
    }

    /// A cell simulator's place in a pack split over several units: its channel n drives
    /// the plant's cell `offset + n`.
    pub fn set_cell_offset(&self, offset: u32) {
        lock(&self.shared.state).cell_offset = offset;
    }

    /// Simulated fault: once switched on, the output ignores `OUTP OFF` (the command is
    /// accepted, the output stays on and reads back on), as a supply whose output stage hangs.
    pub fn stick_output_on(&self) {
        lock(&self.shared.state).output_stuck_on = true;
    }

    /// Close every current connection, as if the instrument dropped off the network; new
    /// connections are still accepted.
    pub fn drop_connections(&self) {
        let mut current = lock(&self.shared.connections);
        current.cancel();
        *current = self.shared.shutdown.child_token();
    }

    /// Stop listening and close every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// A transport connected to this instrument without a socket (for virtual-time runs).
    pub fn connect_in_memory(&self) -> Box<dyn Transport> {
        let (near, far) = tokio::io::duplex(64 * 1024);
        self.serve_stream(far, &self.shared.dialect.terminator);
        Box::new(near)
    }

    /// Serve this instrument on any byte stream, ending replies with `terminator`.
    pub fn serve_stream<S>(&self, stream: S, terminator: &str)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let token = lock(&self.shared.connections).clone();
        tokio::spawn(run_connection(
            self.shared.clone(),
            stream,
            token,
            terminator.to_string(),
        ));
    }

    /// Serve this instrument on a new pseudo-terminal, as on its serial port (replies end
    /// with the dialect's serial terminator). Open [`SerialEndpoint::path`] with
    /// `serial://PATH`. Must be called inside a tokio runtime.
    pub fn serve_serial(&self) -> io::Result<SerialEndpoint> {
        let (master, slave) = open_pty()?;
        let path = tty_name(slave.as_raw_fd())?;
        set_nonblocking(master.as_raw_fd())?;
        // SAFETY: `master` is an OwnedFd: open, owned here alone, and never replaced while
        // the AsyncFd holds it.
        let master = unsafe { AsyncFd::register(master) }.map_err(|e| e.into_parts().1)?;
        let terminator = self.shared.dialect.serial_terminator().to_string();
        self.serve_stream(PtyMaster { fd: master }, &terminator);
        Ok(SerialEndpoint {
            path,
            _slave: slave,
        })
    }
}

/// A simulated instrument's serial port: the far end of a pseudo-terminal.
#[derive(Debug)]
pub struct SerialEndpoint {
    path: PathBuf,
    /// Held open so that the terminal survives a client closing and reopening it.
    _slave: OwnedFd,
}

impl SerialEndpoint {
    /// The terminal to open, e.g. `/dev/pts/3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The address for a rig file: `serial:///dev/pts/3`.
    pub fn address(&self) -> String {
        format!("serial://{}", self.path.display())
    }
}

/// The master side of a pseudo-terminal as an async byte stream.
struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| read_fd(fd.as_raw_fd(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| write_fd(fd.as_raw_fd(), buf)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn run_connection<S>(
    shared: Arc<Shared>,
    stream: S,
    token: CancellationToken,
    terminator: String,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            if token.is_cancelled() {
                return;
            }
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            {
                let mut log = lock(&shared.log);
                if log.len() >= COMMAND_LOG_LIMIT {
                    log.pop_front();
                }
                log.push_back(line.to_string());
            }
            if let Some(reply) = shared.handle_line(line) {
                let reply = format!("{reply}{terminator}");
                let written = tokio::select! {
                    biased;
                    _ = token.cancelled() => return,
                    written = writer.write_all(reply.as_bytes()) => written,
                };
                if written.is_err() {
                    return;
                }
            }
        }
        if buf.len() > MAX_LINE {
            buf.clear();
            push_error(&mut lock(&shared.state), -363, "Input buffer overrun");
        }
        let n = tokio::select! {
            biased;
            _ = token.cancelled() => return,
            n = reader.read(&mut chunk) => n,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
