//! The live page of a run (`hilrig run --serve ADDR`): an HTTP server that lives as long as
//! the run and serves
//!
//! - `GET /`: one self-contained HTML page (inline CSS and JS, no external resources) that
//!   draws the run from its events: plan, current step, plots of the key signals, verdicts,
//!   prompts to answer, and the safe state at the end;
//! - `GET /events`: server-sent events, one `data:` line per event carrying exactly the JSON
//!   object `hilrig run --json` prints (the same text, published by the CLI's output); a
//!   late subscriber first gets every event so far;
//! - `POST /stop`: an operator abort (the same path as Ctrl-C: the run's cancellation, the
//!   plan's teardown, the safe state), recorded as stopped by `STOP on the live page`;
//! - `POST /prompt` (JSON `{"answers": {"entry": "value"}}`) answers a waiting `prompt` step;
//!   `GET /prompt` shows the one waiting (or `null`).
//!
//! On a loopback address anyone on the machine may use it. On any other address a random
//! bearer token is made at start (printed with the URL) and every request must carry it,
//! as `Authorization: Bearer TOKEN` or, so that a browser can open the page and its event
//! stream, `?token=TOKEN`; without it the answer is 401.
//!
//! When the run ends, `LiveServer::shutdown` ends the event streams and stops the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::run::operator::Operator;

/// How the live page's STOP is recorded as `abort.stopped_by`.
pub const STOPPED_BY_PAGE: &str = "STOP on the live page";

/// The page.
const PAGE: &str = include_str!("page.html");

/// The events of a run so far, as the JSON texts `--json` prints, for the event streams.
#[derive(Debug)]
pub struct Hub {
    events: Mutex<Vec<String>>,
    /// (number of events, closed).
    seen: watch::Sender<(usize, bool)>,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            events: Mutex::new(Vec::new()),
            seen: watch::Sender::new((0, false)),
        }
    }
}

impl Hub {
    /// Add one event (a JSON object's text, one line).
    pub fn publish(&self, json: String) {
        let n = {
            let mut e = lock(&self.events);
            e.push(json);
            e.len()
        };
        self.seen.send_modify(|s| s.0 = n);
    }

    /// No more events: every stream ends once it has sent what there is.
    pub fn close(&self) {
        self.seen.send_modify(|s| s.1 = true);
    }

    /// Every event from index `from` on, waiting for the next when there is none yet;
    /// empty once the hub is closed and everything was sent.
    pub async fn next(&self, from: usize) -> Vec<String> {
        let mut rx = self.seen.subscribe();
        loop {
            {
                let e = lock(&self.events);
                if e.len() > from {
                    return e[from..].to_vec();
                }
            }
            if rx.borrow_and_update().1 {
                return Vec::new();
            }
            if rx.changed().await.is_err() {
                return Vec::new();
            }
        }
    }
}

#[derive(Clone)]
struct App {
    hub: Arc<Hub>,
    operator: Operator,
    cancel: CancellationToken,
    token: Option<String>,
}

/// A running live page.
pub struct LiveServer {
    /// The page's address (`http://127.0.0.1:41234/`), with `?token=` when one is needed.
    pub url: String,
    /// The bearer token, for a non-loopback address.
    pub token: Option<String>,
    /// The address actually bound.
    pub addr: SocketAddr,
    hub: Arc<Hub>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LiveServer {
    /// Bind `addr` and serve the page for a run cancelled through `cancel` and `operator`.
    pub async fn start(
        addr: SocketAddr,
        hub: Arc<Hub>,
        operator: Operator,
        cancel: CancellationToken,
    ) -> std::io::Result<LiveServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let token = (!addr.ip().is_loopback()).then(random_token).transpose()?;
        let app = App {
            hub: hub.clone(),
            operator,
            cancel,
            token: token.clone(),
        };
        let router = Router::new()
            .route("/", get(page))
            .route("/events", get(events))
            .route("/stop", post(stop))
            .route("/prompt", post(answer).get(pending))
            .with_state(app);
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router)
                .with_graceful_shutdown(async move { s.cancelled().await });
            if let Err(e) = serve.await {
                tracing::warn!("live page: {e}");
            }
        });
        let host = if addr.ip().is_unspecified() {
            // Bound to every interface: name one a browser on this machine can open.
            let local = if addr.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            format!("{local}:{}", addr.port())
        } else {
            addr.to_string()
        };
        let url = match &token {
            Some(t) => format!("http://{host}/?token={t}"),
            None => format!("http://{host}/"),
        };
        Ok(LiveServer {
            url,
            token,
            addr,
            hub,
            stop,
            task,
        })
    }

    /// End the event streams and stop serving (open connections get up to 5 s to finish).
    pub async fn shutdown(self) {
        self.hub.close();
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// 128 random bits from the operating system, as hex.
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot make a token: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// None when the request may go on, else the 401 answer.
fn check(app: &App, headers: &HeaderMap, query: &BTreeMap<String, String>) -> Option<Response> {
    let want = app.token.as_deref()?;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let given = bearer.or(query.get("token").map(String::as_str));
    if given.is_some_and(|g| same(g.as_bytes(), want.as_bytes())) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a token is needed: `Authorization: Bearer TOKEN` or `?token=TOKEN` (printed by \
             `hilrig run --serve` at start)\n",
        )
            .into_response(),
    )
}

/// Equal, in a time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type Q = Query<BTreeMap<String, String>>;

async fn page(State(app): State<App>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = check(&app, &headers, &q) {
        return r;
    }
    Html(PAGE).into_response()
}

async fn events(State(app): State<App>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = check(&app, &headers, &q) {
        return r;
    }
    let hub = app.hub.clone();
    let stream = futures_util::stream::unfold((hub, 0usize), |(hub, from)| async move {
        let batch = hub.next(from).await;
        if batch.is_empty() {
            return None;
        }
        let n = from + batch.len();
        let mut text = String::new();
        for e in batch {
            text.push_str("data: ");
            text.push_str(&e);
            text.push_str("\n\n");
        }
        Some((Ok::<_, std::convert::Infallible>(text), (hub, n)))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

async fn stop(State(app): State<App>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = check(&app, &headers, &q) {
        return r;
    }
    eprintln!("STOP on the live page: stopping the run and bringing the bench to its safe state");
    app.operator.stop(&app.cancel, STOPPED_BY_PAGE);
    (
        StatusCode::ACCEPTED,
        "stopping: teardown, then the safe state\n",
    )
        .into_response()
}

/// The body of `POST /prompt`.
#[derive(serde::Deserialize)]
struct PromptAnswer {
    #[serde(default)]
    answers: BTreeMap<String, String>,
}

async fn answer(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Q,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = check(&app, &headers, &q) {
        return r;
    }
    let parsed: Result<PromptAnswer, _> = serde_json::from_slice(&body);
    let a = match parsed {
        Ok(a) => a,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"answers\": {{\"entry\": \"value\"}}}}: {e}\n"),
            )
                .into_response()
        }
    };
    match app.operator.answer_from_page(a.answers) {
        Ok(()) => (StatusCode::OK, "answered\n").into_response(),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

async fn pending(State(app): State<App>, headers: HeaderMap, Query(q): Q) -> Response {
    if let Some(r) = check(&app, &headers, &q) {
        return r;
    }
    Json(app.operator.pending()).into_response()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_subscriber_gets_the_events_so_far_then_the_end() {
        let hub = Hub::default();
        hub.publish("{\"a\":1}".into());
        hub.publish("{\"a\":2}".into());
        assert_eq!(hub.next(0).await, ["{\"a\":1}", "{\"a\":2}"]);
        hub.close();
        assert!(hub.next(2).await.is_empty());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"ab", b"abc"));
    }
}
