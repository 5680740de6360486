//! Linux SocketCAN interfaces (`can0`, `vcan0`, PEAK, Kvaser, candleLight, ...).
//!
//! The socket is opened in CAN FD mode (it receives classic and FD frames), with kernel
//! receive timestamps on and every error class subscribed. Data and remote frames are passed
//! on with their kind ([`FrameKind`]: classic, CAN FD with its BRS/ESI flags, remote). Error
//! frames are not passed on as frames; they update the bus state (error-warning,
//! error-passive, bus-off, restarted). Frames are sent as their kind says; error frames
//! cannot be sent.
//! The kernel timestamp (wall clock) is mapped onto the monotonic clock by its age, so a
//! frame that waited in the socket buffer keeps the time it arrived.
//!
//! Frames this process sends are not echoed back to its own receivers (the kernel's default,
//! and what a hardware adapter does); other sockets on the same interface see them.
//!
//! Opening needs a tokio runtime (the socket is registered with its reactor). On systems
//! other than Linux, opening says that socketcan is Linux-only.

pub use imp::SocketCanBus;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use socketcan::{
        id::FdFlags, tokio::CanFdSocket, CanAnyFrame, CanDataFrame, CanFdFrame, CanRemoteFrame,
        EmbeddedFrame, ExtendedId, Id, SocketOptions, StandardId,
    };
    use tokio::sync::broadcast;
    use tokio::time::Instant;

    use crate::can::{Bus, BusFuture, BusState, CanError, Frame, FrameKind, Received, StateCell};

    const CAPACITY: usize = 4096;

    struct Shared {
        state: StateCell,
        closed: AtomicBool,
    }

    /// A SocketCAN interface behind the [`Bus`] trait.
    pub struct SocketCanBus {
        name: String,
        socket: Arc<CanFdSocket>,
        frames: broadcast::Sender<Received>,
        shared: Arc<Shared>,
        task: tokio::task::JoinHandle<()>,
    }

    impl SocketCanBus {
        /// Open an interface such as `can0`; must be called inside a tokio runtime.
        pub fn open(iface: &str) -> Result<Self, CanError> {
            let name = format!("socketcan:{iface}");
            let handle =
                tokio::runtime::Handle::try_current().map_err(|_| CanError::Unavailable {
                    bus: name.clone(),
                    reason: "the socketcan backend must be opened inside the tokio runtime".into(),
                })?;
            let _entered = handle.enter();
            let socket = CanFdSocket::open(iface).map_err(|e| open_error(iface, e))?;
            let option_err = |what: &str, source: io::Error| CanError::Io {
                bus: name.clone(),
                context: format!("cannot {what}"),
                source,
            };
            socket
                .set_error_filter_accept_all()
                .map_err(|e| option_err("subscribe to error frames", e))?;
            socket
                .set_recv_timestamp(true)
                .map_err(|e| option_err("switch on receive timestamps", e))?;

            let socket = Arc::new(socket);
            let (frames, _) = broadcast::channel(CAPACITY);
            let shared = Arc::new(Shared {
                state: StateCell::default(),
                closed: AtomicBool::new(false),
            });
            let task = handle.spawn(receive(
                name.clone(),
                Arc::clone(&socket),
                frames.clone(),
                Arc::clone(&shared),
            ));
            Ok(Self {
                name,
                socket,
                frames,
                shared,
                task,
            })
        }
    }

    impl Drop for SocketCanBus {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// Explain a failure to open an interface, naming the likely cause.
    fn open_error(iface: &str, e: io::Error) -> CanError {
        let bus = format!("socketcan:{iface}");
        let no_af_can = || {
            // SAFETY: plain socket(2) call; the descriptor is closed right away.
            let fd = unsafe { libc::socket(libc::AF_CAN, libc::SOCK_RAW, libc::CAN_RAW) };
            if fd >= 0 {
                // SAFETY: fd is a descriptor this function just opened.
                unsafe { libc::close(fd) };
                false
            } else {
                io::Error::last_os_error().raw_os_error() == Some(libc::EAFNOSUPPORT)
            }
        };
        let reason = match e.raw_os_error() {
            Some(libc::EAFNOSUPPORT) => Some(kernel_lacks_can(iface)),
            Some(libc::ENODEV) if no_af_can() => Some(kernel_lacks_can(iface)),
            Some(libc::ENODEV) => Some(format!(
                "no network interface `{iface}`: check `ip link show`; for a virtual one: \
                 `sudo ip link add dev {iface} type vcan && sudo ip link set up {iface}`"
            )),
            Some(libc::ENETDOWN) => Some(format!(
                "interface `{iface}` is down: `sudo ip link set {iface} up type can bitrate N`"
            )),
            _ => None,
        };
        match reason {
            Some(reason) => CanError::Unavailable { bus, reason },
            None => CanError::Io {
                bus,
                context: format!("cannot open interface {iface}"),
                source: e,
            },
        }
    }

    fn kernel_lacks_can(iface: &str) -> String {
        format!(
            "cannot open `{iface}`: this kernel lacks CAN support (no AF_CAN sockets): load \
             the `can` and `can_raw` modules (`sudo modprobe can_raw`), or use an SLCAN \
             adapter (`slcan:/dev/ttyACM0?bitrate=N`)"
        )
    }

    /// The receive timestamp as a monotonic instant: now, less the frame's age.
    fn to_instant(stamp: SystemTime) -> Instant {
        let now = Instant::now();
        match SystemTime::now().duration_since(stamp) {
            // An age of more than a minute means the wall clock was stepped: use now.
            Ok(age) if age < Duration::from_secs(60) => now.checked_sub(age).unwrap_or(now),
            _ => now,
        }
    }

    fn to_frame(id: Id, data: Vec<u8>, kind: FrameKind) -> Frame {
        let (id, extended) = match id {
            Id::Standard(s) => (u32::from(s.as_raw()), false),
            Id::Extended(e) => (e.as_raw(), true),
        };
        Frame {
            id,
            extended,
            data,
            kind,
        }
    }

    /// The frame a socket frame carries; `None` for an error frame.
    fn from_socket_frame(frame: &CanAnyFrame) -> Option<Frame> {
        Some(match frame {
            CanAnyFrame::Normal(f) => to_frame(f.id(), f.data().to_vec(), FrameKind::Classic),
            CanAnyFrame::Fd(f) => to_frame(
                f.id(),
                f.data().to_vec(),
                FrameKind::Fd {
                    brs: f.is_brs(),
                    esi: f.is_esi(),
                },
            ),
            CanAnyFrame::Remote(f) => to_frame(f.id(), vec![0; f.dlc()], FrameKind::Remote),
            CanAnyFrame::Error(_) => return None,
        })
    }

    async fn receive(
        name: String,
        socket: Arc<CanFdSocket>,
        frames: broadcast::Sender<Received>,
        shared: Arc<Shared>,
    ) {
        loop {
            let (frame, stamp) = match socket.read_frame_with_timestamp().await {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!(bus = %name, "reading the socket failed: {e}");
                    shared.closed.store(true, Ordering::Relaxed);
                    return;
                }
            };
            let at = to_instant(stamp);
            if let CanAnyFrame::Error(e) = &frame {
                if let Some(state) = BusState::from_error_frame(e.error_bits(), e.data()) {
                    let before = shared.state.set(state);
                    if before != state {
                        tracing::warn!(bus = %name, "bus state {before} -> {state}");
                    }
                }
            }
            let Some(frame) = from_socket_frame(&frame) else {
                continue;
            };
            let _ = frames.send(Received { frame, at });
        }
    }

    fn to_socket_frame(frame: &Frame) -> Result<CanAnyFrame, CanError> {
        frame.check()?;
        let bad = || CanError::InvalidFrame(format!("{frame:?}"));
        let id: Id = if frame.extended {
            ExtendedId::new(frame.id).ok_or_else(bad)?.into()
        } else {
            u16::try_from(frame.id)
                .ok()
                .and_then(StandardId::new)
                .ok_or_else(bad)?
                .into()
        };
        match frame.kind {
            FrameKind::Classic => Ok(CanAnyFrame::Normal(
                CanDataFrame::new(id, &frame.data).ok_or_else(bad)?,
            )),
            FrameKind::Fd { brs, esi } => {
                let mut flags = FdFlags::empty();
                flags.set(FdFlags::BRS, brs);
                flags.set(FdFlags::ESI, esi);
                Ok(CanAnyFrame::Fd(
                    CanFdFrame::with_flags(id, &frame.data, flags).ok_or_else(bad)?,
                ))
            }
            FrameKind::Remote => Ok(CanAnyFrame::Remote(
                CanRemoteFrame::new_remote(id, frame.data.len()).ok_or_else(bad)?,
            )),
            FrameKind::Error => Err(CanError::InvalidFrame("error frames cannot be sent".into())),
        }
    }

    impl Bus for SocketCanBus {
        fn name(&self) -> &str {
            &self.name
        }

        fn send(&self, frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
            Box::pin(async move {
                if self.shared.closed.load(Ordering::Relaxed) {
                    return Err(CanError::Closed(self.name.clone()));
                }
                let out = to_socket_frame(&frame)?;
                self.socket
                    .write_frame(&out)
                    .await
                    .map_err(|source| CanError::Io {
                        bus: self.name.clone(),
                        context: match source.raw_os_error() {
                            Some(libc::ENOBUFS) => {
                                "transmit queue full (bus-off, or no other node acknowledging?)"
                                    .into()
                            }
                            _ => "cannot send".into(),
                        },
                        source,
                    })
            })
        }

        fn subscribe(&self) -> broadcast::Receiver<Received> {
            self.frames.subscribe()
        }

        fn state(&self) -> BusState {
            self.shared.state.get()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn opening_outside_a_runtime_is_an_error() {
            let err = SocketCanBus::open("vcan0").err().unwrap();
            assert!(err.to_string().contains("tokio runtime"), "{err}");
        }

        #[tokio::test]
        async fn opening_a_missing_interface_names_the_cause() {
            let err = SocketCanBus::open("hilrig-nocan9")
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("lacks CAN support") || err.contains("no network interface"),
                "{err}"
            );
            assert!(err.contains("hilrig-nocan9"), "{err}");
        }

        fn fd(brs: bool, esi: bool) -> FrameKind {
            FrameKind::Fd { brs, esi }
        }

        #[rstest::rstest]
        #[case::classic(0x123, false, vec![1, 2], FrameKind::Classic)]
        #[case::classic_ext(0x1F33_4455, true, vec![7], FrameKind::Classic)]
        #[case::fd_long(0x1F33_4455, true, vec![0xA5; 12], fd(false, false))]
        #[case::fd_short_brs(0x10, false, vec![1, 2, 3], fd(true, false))]
        #[case::fd_esi(0x10, false, vec![9; 64], fd(false, true))]
        #[case::fd_both(0x10, true, vec![], fd(true, true))]
        #[case::remote(0x7FF, false, vec![0; 5], FrameKind::Remote)]
        #[case::remote_ext(0x1, true, vec![0; 8], FrameKind::Remote)]
        fn frames_convert_for_the_socket_and_back(
            #[case] id: u32,
            #[case] extended: bool,
            #[case] data: Vec<u8>,
            #[case] kind: FrameKind,
        ) {
            let f = Frame::with_kind(id, extended, data, kind).unwrap();
            let out = to_socket_frame(&f).unwrap();
            assert_eq!(out.is_remote_frame(), kind == FrameKind::Remote);
            assert_eq!(matches!(out, CanAnyFrame::Fd(_)), kind.is_fd());
            assert_eq!(from_socket_frame(&out), Some(f));
        }

        #[rstest::rstest]
        #[case::classic_nine(vec![0; 9], FrameKind::Classic)]
        #[case::fd_nine(vec![0; 9], fd(false, false))]
        #[case::error(vec![0; 8], FrameKind::Error)]
        fn frames_the_socket_cannot_take(#[case] data: Vec<u8>, #[case] kind: FrameKind) {
            let f = Frame {
                id: 0x1,
                extended: false,
                data,
                kind,
            };
            assert!(matches!(
                to_socket_frame(&f),
                Err(CanError::InvalidFrame(_))
            ));
        }

        #[test]
        fn kernel_stamps_become_instants_in_the_past() {
            let now = Instant::now();
            let t = to_instant(SystemTime::now() - Duration::from_millis(5));
            assert!(t <= Instant::now());
            assert!(now.saturating_duration_since(t) <= Duration::from_millis(5));
            // A stamp from the future (clock stepped) is read as now.
            let t = to_instant(SystemTime::now() + Duration::from_secs(10));
            assert!(t >= now);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::convert::Infallible;

    use tokio::sync::broadcast;

    use crate::can::{Bus, BusFuture, CanError, Frame, Received};

    /// SocketCAN exists on Linux only; on other systems opening explains that.
    pub struct SocketCanBus {
        never: Infallible,
    }

    impl SocketCanBus {
        /// Always fails: SocketCAN is Linux-only.
        pub fn open(iface: &str) -> Result<Self, CanError> {
            Err(CanError::Unavailable {
                bus: format!("socketcan:{iface}"),
                reason: "SocketCAN exists on Linux only: use an SLCAN adapter \
                         (`slcan:PORT?bitrate=N`)"
                    .into(),
            })
        }
    }

    impl Bus for SocketCanBus {
        fn name(&self) -> &str {
            match self.never {}
        }

        fn send(&self, _frame: Frame) -> BusFuture<'_, Result<(), CanError>> {
            match self.never {}
        }

        fn subscribe(&self) -> broadcast::Receiver<Received> {
            match self.never {}
        }
    }
}
