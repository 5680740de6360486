//! The server of the simulated instruments built on a header table of their own (the
//! oscilloscope, the switch unit): TCP accept loop, in-memory connections, the line loop
//! with its input limit and command log, the error queue, the common commands (`*IDN?`,
//! `*RST`, `*CLS`, `*OPC`, `*OPC?`) and the dispatch of a line's `;`-separated commands
//! to the instrument's actions, whose replies are joined with `;`.
//!
//! An instrument implements [`LineDevice`] (its header table, identity, actions and what
//! `*RST` does) around a [`Core`], and is served by [`Server`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::parser::{parse_line, Pattern};
use super::{fault, lock, ScpiFault, COMMAND_LOG_LIMIT, MAX_LINE, QUEUE_DEPTH};
use crate::scpi::Transport;

/// What every such instrument keeps: reply terminator, error queue, command log, serial
/// number and the shutdown token.
#[derive(Debug)]
pub(super) struct Core {
    terminator: String,
    errors: Mutex<VecDeque<ScpiFault>>,
    log: Mutex<VecDeque<String>>,
    serial: Mutex<String>,
    shutdown: CancellationToken,
}

impl Core {
    /// A core ending replies with `terminator`, answering `*IDN?` with `serial`.
    pub(super) fn new(terminator: &str, serial: &str) -> Self {
        Core {
            terminator: terminator.to_string(),
            errors: Mutex::new(VecDeque::new()),
            log: Mutex::new(VecDeque::new()),
            serial: Mutex::new(serial.to_string()),
            shutdown: CancellationToken::new(),
        }
    }

    /// Queue an error; on overflow the newest entry becomes `-350,"Queue overflow"`.
    pub(super) fn push_error(&self, f: ScpiFault) {
        let mut errors = lock(&self.errors);
        if errors.len() >= QUEUE_DEPTH {
            if let Some(last) = errors.back_mut() {
                *last = fault(-350, "Queue overflow");
            }
        } else {
            errors.push_back(f);
        }
    }

    /// The oldest queued error, taken off the queue (None: the queue is empty).
    pub(super) fn pop_error(&self) -> Option<ScpiFault> {
        lock(&self.errors).pop_front()
    }

    /// The serial number `*IDN?` answers with.
    pub(super) fn serial(&self) -> String {
        lock(&self.serial).clone()
    }

    fn log_line(&self, line: &str) {
        let mut log = lock(&self.log);
        if log.len() >= COMMAND_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back(line.to_string());
    }
}

/// A simulated instrument served by [`Server`].
pub(super) trait LineDevice: Send + Sync + 'static {
    /// What a recognised header does.
    type Act: Copy;

    /// The shared part: queue, log, serial, shutdown.
    fn core(&self) -> &Core;

    /// The instrument's header table.
    fn patterns(&self) -> &[Pattern<Self::Act>];

    /// The `*IDN?` reply.
    fn identity(&self) -> String;

    /// Run one recognised command (`suffix`: the header's numeric suffix, if any).
    fn execute(
        &self,
        act: Self::Act,
        suffix: Option<u32>,
        query: bool,
        params: &[String],
    ) -> Result<Option<Vec<u8>>, ScpiFault>;

    /// What `*RST` does besides nothing (the default).
    fn reset(&self) {}
}

/// Run one line: every command in it, errors to the queue; the replies joined with `;`
/// (None: the line asked nothing).
pub(super) fn handle_line<D: LineDevice>(device: &D, line: &str) -> Option<Vec<u8>> {
    let mut replies: Vec<Vec<u8>> = Vec::new();
    for c in parse_line(line) {
        let result = if c.common {
            common(device, &c.mnemonics[0], c.query)
        } else {
            match device
                .patterns()
                .iter()
                .find_map(|p| p.matches(&c.mnemonics).map(|s| (p.action, s)))
            {
                None => Err(fault(-113, "Undefined header")),
                Some((act, suffix)) => device.execute(act, suffix, c.query, &c.params),
            }
        };
        match result {
            Ok(Some(r)) => replies.push(r),
            Ok(None) => {}
            Err(f) => device.core().push_error(f),
        }
    }
    if replies.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (i, r) in replies.into_iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend(r);
    }
    Some(out)
}

fn common<D: LineDevice>(
    device: &D,
    header: &str,
    query: bool,
) -> Result<Option<Vec<u8>>, ScpiFault> {
    match (header, query) {
        ("*IDN", true) => Ok(Some(device.identity().into_bytes())),
        ("*OPC", true) => Ok(Some(b"1".to_vec())),
        ("*CLS", false) => {
            lock(&device.core().errors).clear();
            Ok(None)
        }
        ("*RST", false) => {
            device.reset();
            Ok(None)
        }
        ("*OPC", false) => Ok(None),
        _ => Err(fault(-113, "Undefined header")),
    }
}

/// A running instrument and where it listens; cloning gives another handle to it.
pub(super) struct Server<D> {
    pub(super) shared: Arc<D>,
    local_addr: SocketAddr,
}

impl<D> Clone for Server<D> {
    fn clone(&self) -> Self {
        Server {
            shared: self.shared.clone(),
            local_addr: self.local_addr,
        }
    }
}

impl<D: LineDevice> Server<D> {
    /// Serve `device` on `listener` until [`Server::shutdown`].
    pub(super) fn serve(listener: TcpListener, device: Arc<D>) -> Self {
        let local_addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let accept = device.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    biased;
                    _ = accept.core().shutdown.cancelled() => return,
                    a = listener.accept() => a,
                };
                match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(run_connection(accept.clone(), stream));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Server {
            shared: device,
            local_addr,
        }
    }

    /// Serve `device` without a socket: reachable through [`Server::connect_in_memory`].
    pub(super) fn in_memory(device: Arc<D>) -> Self {
        Server {
            shared: device,
            local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// The socket address it listens on (the unspecified address in memory).
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A transport connected to the instrument without a socket.
    pub(super) fn connect_in_memory(&self) -> Box<dyn Transport> {
        let (near, far) = tokio::io::duplex(1 << 20);
        tokio::spawn(run_connection(self.shared.clone(), far));
        Box::new(near)
    }

    /// The address to put in a rig file: `tcp://127.0.0.1:<port>`.
    pub(super) fn address(&self) -> String {
        format!("tcp://{}", self.local_addr)
    }

    /// Answer `*IDN?` with this serial number.
    pub(super) fn set_serial(&self, serial: &str) {
        *lock(&self.shared.core().serial) = serial.to_string();
    }

    /// The command lines received, in order (the last [`COMMAND_LOG_LIMIT`]).
    pub(super) fn command_log(&self) -> Vec<String> {
        lock(&self.shared.core().log).iter().cloned().collect()
    }

    /// Stop listening and close every connection.
    pub(super) fn shutdown(&self) {
        self.shared.core().shutdown.cancel();
    }

    /// Run one line as a connection would (without logging it).
    #[cfg(test)]
    pub(super) fn ask(&self, line: &str) -> String {
        String::from_utf8_lossy(&handle_line(&*self.shared, line).unwrap_or_default()).into()
    }
}

async fn run_connection<D, S>(device: Arc<D>, stream: S)
where
    D: LineDevice,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let core = device.core();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end])
                .trim_end_matches('\r')
                .to_string();
            if line.trim().is_empty() {
                continue;
            }
            core.log_line(&line);
            if let Some(mut reply) = handle_line(&*device, &line) {
                reply.extend_from_slice(core.terminator.as_bytes());
                let written = tokio::select! {
                    biased;
                    _ = core.shutdown.cancelled() => return,
                    w = writer.write_all(&reply) => w,
                };
                if written.is_err() {
                    return;
                }
            }
        }
        if buf.len() > MAX_LINE {
            buf.clear();
            core.push_error(fault(-363, "Input buffer overrun"));
        }
        let n = tokio::select! {
            biased;
            _ = core.shutdown.cancelled() => return,
            n = reader.read(&mut chunk) => n,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device with one query and one setting, to test the shared parts alone.
    struct Echo {
        core: Core,
        patterns: Vec<Pattern<bool>>,
        resets: Mutex<u32>,
    }

    impl LineDevice for Echo {
        type Act = bool;
        fn core(&self) -> &Core {
            &self.core
        }
        fn patterns(&self) -> &[Pattern<bool>] {
            &self.patterns
        }
        fn identity(&self) -> String {
            format!("ACME,ECHO,{},1.0", self.core.serial())
        }
        fn execute(
            &self,
            act: bool,
            _suffix: Option<u32>,
            query: bool,
            _params: &[String],
        ) -> Result<Option<Vec<u8>>, ScpiFault> {
            match (act, query) {
                (true, true) => Ok(Some(b"ping".to_vec())),
                (false, false) => Err(fault(-222, "Data out of range")),
                _ => Err(fault(-113, "Undefined header")),
            }
        }
        fn reset(&self) {
            *lock(&self.resets) += 1;
        }
    }

    fn echo() -> Server<Echo> {
        Server::in_memory(Arc::new(Echo {
            core: Core::new("\n", "E1"),
            patterns: vec![Pattern::new("PING", true), Pattern::new("SETting", false)],
            resets: Mutex::new(0),
        }))
    }

    #[rstest::rstest]
    #[case::one_query("PING?", "ping")]
    #[case::replies_joined("PING?;*OPC?;:PING?", "ping;1;ping")]
    #[case::identity("*IDN?", "ACME,ECHO,E1,1.0")]
    #[case::a_setting_answers_nothing("*CLS;*RST", "")]
    fn a_line_answers_with_its_queries_joined(#[case] line: &str, #[case] reply: &str) {
        assert_eq!(echo().ask(line), reply);
    }

    #[test]
    fn errors_queue_up_to_the_depth_and_the_last_reads_overflow() {
        let s = echo();
        for _ in 0..QUEUE_DEPTH + 3 {
            s.ask("SET 1");
        }
        s.ask("NOSUCH");
        let mut seen = Vec::new();
        while let Some(f) = s.shared.core.pop_error() {
            seen.push(f.0);
        }
        assert_eq!(seen.len(), QUEUE_DEPTH);
        assert_eq!(seen[0], -222);
        assert_eq!(seen[QUEUE_DEPTH - 1], -350);
        s.ask("NOSUCH;*CLS");
        assert_eq!(s.shared.core.pop_error(), None);
        s.ask("*RST");
        assert_eq!(*lock(&s.shared.resets), 1);
    }

    #[tokio::test]
    async fn a_connection_logs_lines_and_ends_replies_with_the_terminator() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let s = echo();
        let mut t = s.connect_in_memory();
        t.write_all(b"PING?\r\n\nSET 1\n*IDN?\n").await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 64];
        while !got.ends_with(b"E1,1.0\n") {
            let n = t.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, b"ping\nACME,ECHO,E1,1.0\n");
        assert_eq!(s.command_log(), vec!["PING?", "SET 1", "*IDN?"]);
        s.shutdown();
    }
}
