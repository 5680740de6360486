//! Test helpers: a scripted SCPI instrument on an in-memory pipe.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::scpi::Transport;

/// A scripted instrument on an in-memory pipe: each line received is passed to `answer`,
/// whose reply (if any) is written back. The task returns the lines it received.
pub(crate) fn scripted_pipe(
    mut answer: impl FnMut(&str) -> Option<String> + Send + 'static,
) -> (Box<dyn Transport>, tokio::task::JoinHandle<Vec<String>>) {
    let (near, far) = tokio::io::duplex(1 << 16);
    let task = tokio::spawn(async move {
        let (read, mut write) = tokio::io::split(far);
        let mut lines = BufReader::new(read).lines();
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let reply = answer(&line);
            seen.push(line);
            if let Some(reply) = reply {
                if write
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        seen
    });
    (Box::new(near), task)
}

/// The lines a scripted pipe received, without the error-queue reads.
pub(crate) async fn sent_commands(task: tokio::task::JoinHandle<Vec<String>>) -> Vec<String> {
    task.await
        .unwrap()
        .into_iter()
        .filter(|l| l != "SYST:ERR?")
        .collect()
}
