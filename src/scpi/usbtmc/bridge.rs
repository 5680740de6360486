//! The bridge from a USBTMC [`Session`] to the byte stream the SCPI client speaks.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

use super::{Session, UsbtmcError, UsbtmcPipe};

/// True when a message asks for a reply (contains `?`), so the bridge requests one.
fn is_query(msg: &[u8]) -> bool {
    msg.contains(&b'?')
}

/// The client's end of a USBTMC bridge: a byte stream whose reads and writes fail with the
/// USB error's text once the bridge has stopped on one.
struct UsbtmcStream {
    inner: DuplexStream,
    failure: Arc<Mutex<Option<String>>>,
}

impl UsbtmcStream {
    fn failure(&self) -> Option<io::Error> {
        let text = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        text.map(io::Error::other)
    }
}

impl AsyncRead for UsbtmcStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => match self.failure() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Ready(Ok(())),
            },
            other => other,
        }
    }
}

impl AsyncWrite for UsbtmcStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.failure().unwrap_or(e))),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `session` to the SCPI client as a byte stream: a thread of its own makes the
/// (blocking) USB transfers; it ends when the client drops the stream or USB fails.
pub fn into_transport<P: UsbtmcPipe + Send + 'static>(
    session: Session<P>,
) -> Result<Box<dyn crate::scpi::Transport>, UsbtmcError> {
    let (client, device) = tokio::io::duplex(64 * 1024);
    let failure = Arc::new(Mutex::new(None));
    let slot = failure.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| UsbtmcError::Usb(format!("cannot start the USBTMC bridge: {e}")))?;
    std::thread::Builder::new()
        .name("usbtmc".into())
        .spawn(move || runtime.block_on(bridge(session, device, slot)))
        .map_err(|e| UsbtmcError::Usb(format!("cannot start the USBTMC bridge: {e}")))?;
    Ok(Box::new(UsbtmcStream {
        inner: client,
        failure,
    }))
}

/// The bridge loop: one USBTMC message per line written, one reply read per query.
async fn bridge<P: UsbtmcPipe>(
    mut session: Session<P>,
    mut device: DuplexStream,
    failure: Arc<Mutex<Option<String>>>,
) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match device.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let msg: Vec<u8> = pending.drain(..=end).collect();
            let result = session.write_message(&msg).and_then(|()| {
                if is_query(&msg) {
                    session.read_message().map(Some)
                } else {
                    Ok(None)
                }
            });
            match result {
                Ok(Some(reply)) => {
                    if device.write_all(&reply).await.is_err() {
                        return;
                    }
                }
                // The transfer was aborted; the client reports its own reply timeout.
                Ok(None) | Err(UsbtmcError::Timeout { .. }) => {}
                Err(e) => {
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    return;
                }
            }
        }
    }
}
