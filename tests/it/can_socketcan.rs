//! The socketcan backend. Machines without kernel CAN (no AF_CAN, no vcan0) can only check
//! the error for a missing interface; the frame tests run on `vcan0` when HILRIG_VCAN=1:
//!
//! ```sh
//! sudo modprobe vcan && sudo ip link add dev vcan0 type vcan && sudo ip link set up vcan0
//! HILRIG_VCAN=1 cargo test --test it can_socketcan::
//! ```

use std::time::Duration;

use hilrig::can::{self, BusState, Frame};

fn vcan_enabled(test: &str) -> bool {
    if std::env::var("HILRIG_VCAN").as_deref() == Ok("1") {
        true
    } else {
        println!("{test}: not run: set HILRIG_VCAN=1 (needs a vcan0 interface)");
        false
    }
}

#[tokio::test]
async fn a_missing_interface_says_why() {
    let err = can::open("socketcan:hilrig-nocan7")
        .err()
        .unwrap()
        .to_string();
    if cfg!(target_os = "linux") {
        assert!(
            err.contains("lacks CAN support") || err.contains("no network interface"),
            "{err}"
        );
    } else {
        assert!(err.contains("Linux only"), "{err}");
    }
    assert!(err.contains("hilrig-nocan7"), "{err}");
}

#[tokio::test]
async fn vcan_frames_cross_between_two_sockets_with_timestamps() {
    if !vcan_enabled("vcan_frames_cross_between_two_sockets_with_timestamps") {
        return;
    }
    let a = can::open("socketcan:vcan0").unwrap();
    let b = can::open("socketcan:vcan0").unwrap();
    let mut rx = b.subscribe();
    let mut own = a.subscribe();
    let before = tokio::time::Instant::now();
    let frames = [
        Frame::new(0x123, false, &[1, 2, 3]).unwrap(),
        Frame::new(0x1F33_4455, true, &[]).unwrap(),
        Frame::new(0x7FF, false, &[0xFF; 8]).unwrap(),
    ];
    for f in &frames {
        a.send(f.clone()).await.unwrap();
    }
    for f in &frames {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("frame within 5 s")
            .unwrap();
        assert_eq!(&got.frame, f);
        assert!(got.at >= before && got.at <= tokio::time::Instant::now());
    }
    // The sender's own receivers do not see its frames (kernel default, like hardware).
    assert!(own.try_recv().is_err());
    assert_eq!(b.state(), BusState::ErrorActive);
}

#[tokio::test]
async fn vcan_carries_fd_frames_when_the_interface_allows() {
    if !vcan_enabled("vcan_carries_fd_frames_when_the_interface_allows") {
        return;
    }
    let a = can::open("socketcan:vcan0").unwrap();
    let b = can::open("socketcan:vcan0").unwrap();
    let mut rx = b.subscribe();
    let data: Vec<u8> = (0..64).collect();
    match a.send(Frame::new(0x100, false, &data).unwrap()).await {
        Ok(()) => {
            let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("frame within 5 s")
                .unwrap();
            assert_eq!(got.frame.data, data);
        }
        // vcan0 created without `mtu 72` takes classic frames only.
        Err(e) => println!("vcan0 refused a CAN FD frame (set `mtu 72` to test FD): {e}"),
    }
}
