//! A SCPI client over any byte-stream transport: writes, queries, and error-queue checks.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::reply::{find_reply_end, parse_block, parse_error_reply, ReplyEnd};
use super::{ScpiError, Transport};

/// The error-queue query used unless a dialect names another one.
pub const DEFAULT_ERROR_QUERY: &str = "SYST:ERR?";

/// Most error-queue entries read by one `drain_errors` call.
pub const MAX_ERROR_DRAIN: usize = 32;

/// Longest reply accepted without a terminator (16 MiB), so a babbling peer cannot exhaust memory.
pub const MAX_REPLY_LEN: usize = 16 * 1024 * 1024;

/// How a client talks to one instrument.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Longest wait for any read or write.
    pub timeout: Duration,
    /// Message terminator appended to commands and expected after replies (usually `"\n"`).
    pub terminator: String,
    /// Least time between the start of two consecutive commands.
    pub inter_command_delay: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            terminator: "\n".into(),
            inter_command_delay: Duration::ZERO,
        }
    }
}

/// A SCPI client owning one transport.
pub struct Client {
    transport: Box<dyn Transport>,
    options: ClientOptions,
    error_query: String,
    buf: Vec<u8>,
    last_command: String,
    last_write: Option<Instant>,
    /// A reply may still be in flight after a timeout or a malformed reply; discard it first.
    stale: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.options)
            .field("error_query", &self.error_query)
            .field("last_command", &self.last_command)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client over `transport`; an empty terminator is taken as `"\n"`.
    pub fn new(transport: Box<dyn Transport>, mut options: ClientOptions) -> Self {
        if options.terminator.is_empty() {
            options.terminator = "\n".into();
        }
        Self {
            transport,
            options,
            error_query: DEFAULT_ERROR_QUERY.into(),
            buf: Vec::new(),
            last_command: String::new(),
            last_write: None,
            stale: false,
        }
    }

    /// Connect to `address` the way `dialect` asks (its port, serial baud rate and
    /// terminator, inter-command delay and error query), without sending anything. Returns
    /// the client and the channel a `?channel=N` option names.
    pub async fn connect_for(
        address: &str,
        dialect: &super::Dialect,
        timeout: Duration,
    ) -> Result<(Client, Option<u32>), ScpiError> {
        let (address, channel) = super::split_channel(address)?;
        let mut address = super::Address::parse(&address, Some(dialect.default_port))?;
        if let super::Address::Serial { settings, .. } = &mut address {
            if settings.baud.is_none() {
                settings.baud = dialect.serial.as_ref().and_then(|s| s.baud);
            }
        }
        let options = dialect.client_options_for(&address, timeout);
        let transport = super::connect_address(&address, timeout).await?;
        let client = Client::new(transport, options).with_error_query(&dialect.error_query);
        Ok((client, channel))
    }

    /// Read the whole error queue (at most 32 entries) and return every entry that is not
    /// code 0, with the instrument's own text.
    pub async fn error_queue(&mut self) -> Result<Vec<(i32, String)>, ScpiError> {
        let query = self.error_query.clone();
        let mut entries = Vec::new();
        for _ in 0..MAX_ERROR_DRAIN {
            let Some((code, message)) = self.error_entry(&query).await? else {
                break;
            };
            entries.push((code, message));
        }
        Ok(entries)
    }

    /// Read one error-queue entry with `query`; None for code 0 (the queue is empty).
    async fn error_entry(&mut self, query: &str) -> Result<Option<(i32, String)>, ScpiError> {
        self.send(query).await?;
        let bytes = self.read_reply(query).await?;
        let reply = String::from_utf8_lossy(&bytes);
        let (code, message) = parse_error_reply(&reply)
            .map_err(|reason| ScpiError::bad_reply(query, &reply, reason))?;
        Ok((code != 0).then_some((code, message)))
    }

    /// Use `query` instead of `SYST:ERR?` to read the error queue.
    pub fn with_error_query(mut self, query: impl Into<String>) -> Self {
        self.error_query = query.into();
        self
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The last command or query sent, other than error-queue reads.
    pub fn last_command(&self) -> &str {
        &self.last_command
    }

    /// Send one command (no reply expected).
    pub async fn write(&mut self, cmd: &str) -> Result<(), ScpiError> {
        self.last_command = cmd.to_string();
        self.send(cmd).await
    }

    /// Send a command, then check the error queue; an instrument error names `cmd`.
    pub async fn write_checked(&mut self, cmd: &str) -> Result<(), ScpiError> {
        self.write(cmd).await?;
        self.drain_errors().await
    }

    /// Send several commands in order, then check the error queue once; an instrument error
    /// names all of them (`INST:NSEL 2; VOLT 5`).
    pub async fn write_sequence_checked(&mut self, cmds: &[String]) -> Result<(), ScpiError> {
        for cmd in cmds {
            self.write(cmd).await?;
        }
        self.last_command = cmds.join("; ");
        self.drain_errors().await
    }

    /// Send a query and return its reply as text, without terminator or trailing CR.
    pub async fn query(&mut self, cmd: &str) -> Result<String, ScpiError> {
        let bytes = self.query_raw(cmd).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Send a query and return its reply bytes, without terminator or trailing CR.
    pub async fn query_raw(&mut self, cmd: &str) -> Result<Vec<u8>, ScpiError> {
        self.last_command = cmd.to_string();
        self.send(cmd).await?;
        self.read_reply(cmd).await
    }

    /// Send a query whose reply is one definite-length block and return the block's payload.
    pub async fn query_block(&mut self, cmd: &str) -> Result<Vec<u8>, ScpiError> {
        let reply = self.query_raw(cmd).await?;
        match parse_block(&reply) {
            Ok(payload) => Ok(payload.to_vec()),
            Err(reason) => Err(ScpiError::bad_reply(
                cmd,
                &String::from_utf8_lossy(&reply),
                reason,
            )),
        }
    }

    /// Read the error queue until it reports code 0 (at most 32 reads). The first non-zero
    /// entry becomes `ScpiError::Instrument`, naming the last command sent; the queue is
    /// emptied either way so the next check starts clean.
    pub async fn drain_errors(&mut self) -> Result<(), ScpiError> {
        let after = self.last_command.clone();
        let query = self.error_query.clone();
        let mut first: Option<(i32, String)> = None;
        for _ in 0..MAX_ERROR_DRAIN {
            let Some((code, message)) = self.error_entry(&query).await? else {
                break;
            };
            if first.is_none() {
                first = Some((code, message));
            } else {
                tracing::warn!(code, message = %message, after = %after, "further instrument error");
            }
        }
        match first {
            Some((code, message)) => Err(ScpiError::Instrument {
                code,
                message,
                after,
            }),
            None => Ok(()),
        }
    }

    /// Wait until the next command may be sent: the dialect's pause after the last one
    /// (`inter_command_delay`) has passed. `send` does this itself; a caller timing the
    /// instrument (`ping`) waits first, so the pause is not counted as latency.
    pub async fn wait_ready(&mut self) {
        if let Some(last) = self.last_write {
            let ready = last + self.options.inter_command_delay;
            if Instant::now() < ready {
                tokio::time::sleep_until(ready).await;
            }
        }
    }

    async fn send(&mut self, cmd: &str) -> Result<(), ScpiError> {
        if cmd.contains(['\n', '\r']) {
            return Err(ScpiError::InvalidCommand {
                command: cmd.escape_debug().to_string(),
            });
        }
        if self.stale {
            self.discard_pending().await;
        }
        self.wait_ready().await;
        self.last_write = Some(Instant::now());
        let mut message = Vec::with_capacity(cmd.len() + self.options.terminator.len());
        message.extend_from_slice(cmd.as_bytes());
        message.extend_from_slice(self.options.terminator.as_bytes());
        let transport = &mut self.transport;
        let io = async {
            transport.write_all(&message).await?;
            transport.flush().await
        };
        match tokio::time::timeout(self.options.timeout, io).await {
            Err(_) => {
                self.stale = true;
                Err(ScpiError::Timeout {
                    command: cmd.to_string(),
                    timeout: self.options.timeout,
                })
            }
            Ok(Err(error)) => Err(io_error(cmd, error)),
            Ok(Ok(())) => Ok(()),
        }
    }

    async fn read_reply(&mut self, cmd: &str) -> Result<Vec<u8>, ScpiError> {
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, self.read_reply_inner(cmd)).await {
            Err(_) => {
                self.stale = true;
                Err(ScpiError::Timeout {
                    command: cmd.to_string(),
                    timeout,
                })
            }
            Ok(Err(error)) => {
                if !matches!(error, ScpiError::BadReply { .. }) {
                    self.stale = true;
                }
                Err(error)
            }
            Ok(Ok(reply)) => Ok(reply),
        }
    }

    async fn read_reply_inner(&mut self, cmd: &str) -> Result<Vec<u8>, ScpiError> {
        let mut chunk = [0u8; 4096];
        // A reply ends at the last byte of the terminator (LF for both "\n" and "\r\n");
        // a CR before it is dropped below, so an instrument that answers "\n" where "\r\n"
        // is sent (or the other way round) is still understood.
        let end = self
            .options
            .terminator
            .as_bytes()
            .last()
            .copied()
            .unwrap_or(b'\n');
        loop {
            match find_reply_end(&self.buf, &[end]) {
                ReplyEnd::Complete { body_end, consumed } => {
                    let mut reply: Vec<u8> = self.buf.drain(..consumed).collect();
                    reply.truncate(body_end);
                    while reply.last() == Some(&b'\r') {
                        reply.pop();
                    }
                    return Ok(reply);
                }
                ReplyEnd::Malformed(reason) => {
                    let shown = String::from_utf8_lossy(&self.buf).into_owned();
                    self.buf.clear();
                    self.stale = true;
                    return Err(ScpiError::bad_reply(cmd, &shown, reason));
                }
                ReplyEnd::Incomplete if self.buf.len() > MAX_REPLY_LEN => {
                    let shown = String::from_utf8_lossy(&self.buf[..200]).into_owned();
                    self.buf.clear();
                    self.stale = true;
                    return Err(ScpiError::bad_reply(
                        cmd,
                        &shown,
                        format!("no terminator within {MAX_REPLY_LEN} bytes"),
                    ));
                }
                ReplyEnd::Incomplete => {}
            }
            let n = self
                .transport
                .read(&mut chunk)
                .await
                .map_err(|error| io_error(cmd, error))?;
            if n == 0 {
                return Err(ScpiError::Disconnected {
                    command: cmd.to_string(),
                });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Before the next command, drop buffered bytes and whatever the transport has ready
    /// right now (a late reply to an earlier query), without waiting for more.
    async fn discard_pending(&mut self) {
        self.buf.clear();
        self.stale = false;
        let mut chunk = [0u8; 4096];
        for _ in 0..1024 {
            match tokio::time::timeout(Duration::ZERO, self.transport.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
    }
}

fn io_error(cmd: &str, error: std::io::Error) -> ScpiError {
    use std::io::ErrorKind::*;
    match error.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected => {
            ScpiError::Disconnected {
                command: cmd.to_string(),
            }
        }
        _ => ScpiError::Io {
            command: cmd.to_string(),
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader, DuplexStream};

    fn options() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_millis(300),
            ..Default::default()
        }
    }

    /// A client over an in-memory pipe, and the far end of the pipe.
    fn pair() -> (Client, DuplexStream) {
        let (near, far) = tokio::io::duplex(1 << 16);
        (Client::new(Box::new(near), options()), far)
    }

    /// Answer each received line with the next scripted reply bytes (None: stay silent).
    fn script(
        far: DuplexStream,
        replies: Vec<Option<&'static [u8]>>,
    ) -> tokio::task::JoinHandle<Vec<String>> {
        tokio::spawn(async move {
            let (read, mut write) = tokio::io::split(far);
            let mut lines = BufReader::new(read).lines();
            let mut seen = Vec::new();
            let mut replies = replies.into_iter();
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push(line);
                match replies.next() {
                    Some(Some(reply)) => {
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                    Some(None) => {}
                    None => break,
                }
            }
            seen
        })
    }

    #[tokio::test]
    async fn query_over_an_in_memory_duplex() {
        let (mut client, far) = pair();
        let server = script(
            far,
            vec![Some(b"RIGOL TECHNOLOGIES,DL3021,DL3A0001,00.01\r\n")],
        );
        assert_eq!(
            client.query("*IDN?").await.unwrap(),
            "RIGOL TECHNOLOGIES,DL3021,DL3A0001,00.01"
        );
        drop(client);
        assert_eq!(server.await.unwrap(), vec!["*IDN?"]);
    }

    #[tokio::test]
    async fn block_with_line_feeds_is_read_whole() {
        let (mut client, far) = pair();
        let _server = script(far, vec![Some(b"#15a\nb\nc\n"), Some(b"1\n")]);
        assert_eq!(client.query_block("DATA?").await.unwrap(), b"a\nb\nc");
        assert_eq!(client.query("*OPC?").await.unwrap(), "1");
    }

    #[tokio::test]
    async fn block_arriving_in_pieces() {
        let (mut client, mut far) = pair();
        let server = tokio::spawn(async move {
            let mut line = [0u8; 6];
            far.read_exact(&mut line).await.unwrap();
            for piece in [b"#".as_slice(), b"2", b"1", b"2hello\n", b"world\n", b"\n"] {
                far.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            far
        });
        assert_eq!(
            client.query_raw("DATA?").await.unwrap(),
            b"#212hello\nworld\n"
        );
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn drain_errors_reports_the_first_error_and_empties_the_queue() {
        let (mut client, far) = pair();
        let server = script(
            far,
            vec![
                None,
                Some(b"-222,\"Data out of range\"\n"),
                Some(b"-221,\"Settings conflict\"\n"),
                Some(b"+0,\"No error\"\n"),
            ],
        );
        let error = client.write_checked("VOLT 500").await.unwrap_err();
        match &error {
            ScpiError::Instrument {
                code,
                message,
                after,
            } => {
                assert_eq!(
                    (*code, message.as_str(), after.as_str()),
                    (-222, "Data out of range", "VOLT 500")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            error
                .to_string()
                .contains("-222,\"Data out of range\" after `VOLT 500`"),
            "{error}"
        );
        drop(client);
        assert_eq!(
            server.await.unwrap(),
            vec!["VOLT 500", "SYST:ERR?", "SYST:ERR?", "SYST:ERR?"]
        );
    }

    #[tokio::test]
    async fn drain_errors_stops_after_32_reads() {
        let (mut client, far) = pair();
        let mut replies = vec![None];
        replies.extend(std::iter::repeat_n(
            Some(b"-350,\"Queue overflow\"\n".as_slice()),
            40,
        ));
        let server = script(far, replies);
        let error = client.write_checked("VOLT 1").await.unwrap_err();
        assert!(
            matches!(error, ScpiError::Instrument { code: -350, .. }),
            "{error}"
        );
        drop(client);
        assert_eq!(server.await.unwrap().len(), 1 + MAX_ERROR_DRAIN);
    }

    #[tokio::test]
    async fn garbage_error_reply_is_a_bad_reply() {
        let (mut client, far) = pair();
        let _server = script(far, vec![None, Some(b"\xff\xfegarbage\n")]);
        let error = client.write_checked("OUTP 1").await.unwrap_err();
        assert!(
            matches!(&error, ScpiError::BadReply { command, .. } if command == "SYST:ERR?"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn silence_is_a_timeout_and_a_late_reply_is_discarded() {
        let (mut client, mut far) = pair();
        let error = client.query("MEAS:VOLT?").await.unwrap_err();
        assert!(
            matches!(&error, ScpiError::Timeout { command, .. } if command == "MEAS:VOLT?"),
            "{error}"
        );
        // The late answer to the first query must not be taken as the answer to the next.
        far.write_all(b"1.0\n").await.unwrap();
        let server = tokio::spawn(async move {
            let mut buf = vec![0u8; 64];
            let mut seen = Vec::new();
            while !seen.ends_with(b"MEAS:CURR?\n") {
                let n = far.read(&mut buf).await.unwrap();
                seen.extend_from_slice(&buf[..n]);
            }
            far.write_all(b"2.0\n").await.unwrap();
            far
        });
        assert_eq!(client.query("MEAS:CURR?").await.unwrap(), "2.0");
        drop(server.await.unwrap());
    }

    #[tokio::test]
    async fn eof_is_disconnected() {
        let (mut client, mut far) = pair();
        let server = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let _ = far.read(&mut buf).await;
            far.write_all(b"#15ab").await.unwrap();
        });
        let error = client.query("DATA?").await.unwrap_err();
        assert!(
            matches!(&error, ScpiError::Disconnected { command } if command == "DATA?"),
            "{error}"
        );
        server.await.unwrap();
        let error = client.write("OUTP 0").await.unwrap_err();
        assert!(matches!(error, ScpiError::Disconnected { .. }), "{error}");
    }

    #[tokio::test]
    async fn malformed_block_header_is_a_bad_reply() {
        let (mut client, far) = pair();
        let _server = script(far, vec![Some(b"#3ab\n")]);
        let error = client.query("DATA?").await.unwrap_err();
        assert!(matches!(error, ScpiError::BadReply { .. }), "{error}");
    }

    #[tokio::test]
    async fn line_breaks_inside_a_command_are_refused() {
        let (mut client, far) = pair();
        let server = script(far, vec![]);
        let error = client.write("VOLT 5\nOUTP 1").await.unwrap_err();
        assert!(matches!(error, ScpiError::InvalidCommand { .. }), "{error}");
        drop(client);
        assert!(server.await.unwrap().is_empty());
    }
}
