//! Serial-port transport: the port's blocking reads and writes run on two threads, bridged to
//! the async [`Transport`] the client uses through an in-memory pipe.
//!
//! Closing the transport stops both threads: the writer side sees the end of the pipe, and
//! the reader thread notices within one read timeout. A port that fails (unplugged adapter)
//! closes the pipe, which the client reports as a dropped connection.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::thread;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use super::transport::{Address, FlowControl, Parity, SerialSettings, DEFAULT_BAUD};
use super::{ScpiError, Transport};

/// How long one blocking read waits before the reader thread checks whether to stop.
const READ_POLL: Duration = Duration::from_millis(50);

/// Size of the pipe between the port threads and the client.
const PIPE: usize = 64 * 1024;

/// Open the serial port `path` with `settings` within `timeout`.
pub(super) async fn open(
    address: &Address,
    path: &str,
    settings: &SerialSettings,
    timeout: Duration,
) -> Result<Box<dyn Transport>, ScpiError> {
    let builder = serialport::new(path, settings.baud.unwrap_or(DEFAULT_BAUD))
        .data_bits(match settings.data_bits {
            5 => serialport::DataBits::Five,
            6 => serialport::DataBits::Six,
            7 => serialport::DataBits::Seven,
            _ => serialport::DataBits::Eight,
        })
        .parity(match settings.parity {
            Parity::None => serialport::Parity::None,
            Parity::Even => serialport::Parity::Even,
            Parity::Odd => serialport::Parity::Odd,
        })
        .stop_bits(match settings.stop_bits {
            2 => serialport::StopBits::Two,
            _ => serialport::StopBits::One,
        })
        .flow_control(match settings.flow {
            FlowControl::None => serialport::FlowControl::None,
            FlowControl::Hardware => serialport::FlowControl::Hardware,
            FlowControl::Software => serialport::FlowControl::Software,
        })
        .timeout(READ_POLL);
    let opening = tokio::task::spawn_blocking(move || {
        let port = builder.open()?;
        let writer = port.try_clone()?;
        Ok::<_, serialport::Error>((port, writer))
    });
    let (reader, writer) = match tokio::time::timeout(timeout, opening).await {
        Err(_) => {
            return Err(ScpiError::ConnectTimeout {
                address: address.to_string(),
                timeout,
            })
        }
        Ok(Err(join)) => {
            return Err(ScpiError::Connect {
                address: address.to_string(),
                error: io::Error::other(join.to_string()),
            })
        }
        Ok(Ok(Err(error))) => {
            return Err(ScpiError::Connect {
                address: address.to_string(),
                error: port_error(path, error),
            })
        }
        Ok(Ok(Ok(pair))) => pair,
    };
    let pipe =
        bridge(Box::new(reader), Box::new(writer), path).map_err(|error| ScpiError::Connect {
            address: address.to_string(),
            error,
        })?;
    Ok(Box::new(pipe))
}

/// The port's error as an I/O error that says which port and what to check.
fn port_error(path: &str, error: serialport::Error) -> io::Error {
    let kind = match error.kind() {
        serialport::ErrorKind::Io(kind) => kind,
        serialport::ErrorKind::NoDevice => io::ErrorKind::NotFound,
        serialport::ErrorKind::InvalidInput => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(
        kind,
        format!(
            "serial port {path}: {}; check the device name, that no other program holds the \
             port, and that you may open it (on Linux: membership of the dialout group)",
            error.description
        ),
    )
}

/// Run blocking `reader` and `writer` on threads and return the async end of a pipe to them.
/// Must be called inside a tokio runtime.
pub(super) fn bridge(
    mut reader: Box<dyn Read + Send>,
    mut writer: Box<dyn Write + Send>,
    name: &str,
) -> io::Result<DuplexStream> {
    let (near, far) = tokio::io::duplex(PIPE);
    let (mut far_read, mut far_write) = tokio::io::split(far);
    let stop = Arc::new(AtomicBool::new(false));

    // Port -> client.
    let (to_client, mut from_port) = mpsc::channel::<Vec<u8>>(64);
    let reader_stop = stop.clone();
    let reader_name = name.to_string();
    thread::Builder::new()
        .name("scpi-serial-read".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            while !reader_stop.load(Ordering::Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to_client.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if is_transient(&e) => {}
                    Err(e) => {
                        tracing::warn!(port = %reader_name, "serial read failed: {e}");
                        break;
                    }
                }
            }
            reader_stop.store(true, Ordering::Relaxed);
        })?;
    tokio::spawn(async move {
        while let Some(bytes) = from_port.recv().await {
            if far_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
        // The client reads the end of the stream: the port is gone.
        let _ = far_write.shutdown().await;
    });

    // Client -> port.
    let (to_port, for_port) = std_mpsc::channel::<Vec<u8>>();
    let writer_stop = stop.clone();
    let writer_name = name.to_string();
    thread::Builder::new()
        .name("scpi-serial-write".into())
        .spawn(move || {
            for bytes in for_port {
                if let Err(e) = writer.write_all(&bytes).and_then(|()| writer.flush()) {
                    tracing::warn!(port = %writer_name, "serial write failed: {e}");
                    break;
                }
            }
            writer_stop.store(true, Ordering::Relaxed);
        })?;
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match far_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_port.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
        // The client closed the transport: let the reader thread end too.
        stop.store(true, Ordering::Relaxed);
    });
    Ok(near)
}

/// A read error that only means "nothing yet" (a read timeout, or an interrupted or
/// would-block read): the reading thread tries again.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A fake port: reads return the queued bytes (or time out), writes are recorded.
    #[derive(Clone, Default)]
    struct FakePort {
        incoming: Arc<Mutex<VecDeque<io::Result<Vec<u8>>>>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Read for FakePort {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let next = self
                .incoming
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match next {
                Some(Ok(bytes)) => {
                    buf[..bytes.len()].copy_from_slice(&bytes);
                    Ok(bytes.len())
                }
                Some(Err(e)) => Err(e),
                None => {
                    thread::sleep(Duration::from_millis(5));
                    Err(io::ErrorKind::TimedOut.into())
                }
            }
        }
    }

    impl Write for FakePort {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn bytes_cross_the_bridge_both_ways() {
        let port = FakePort::default();
        port.incoming
            .lock()
            .unwrap()
            .push_back(Ok(b"ACME,PS-1,1,1\r\n".to_vec()));
        let mut pipe = bridge(Box::new(port.clone()), Box::new(port.clone()), "fake").unwrap();
        pipe.write_all(b"*IDN?\r\n").await.unwrap();
        let mut reply = [0u8; 15];
        pipe.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"ACME,PS-1,1,1\r\n");
        for _ in 0..100 {
            if port.written.lock().unwrap().len() == 7 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(port.written.lock().unwrap().as_slice(), b"*IDN?\r\n");
    }

    #[tokio::test]
    async fn a_failing_port_ends_the_stream() {
        let port = FakePort::default();
        port.incoming
            .lock()
            .unwrap()
            .push_back(Err(io::Error::other("device unplugged")));
        let mut pipe = bridge(Box::new(port.clone()), Box::new(port), "fake").unwrap();
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), pipe.read(&mut buf))
            .await
            .expect("the stream should end, not hang")
            .unwrap();
        assert_eq!(n, 0);
    }
}
