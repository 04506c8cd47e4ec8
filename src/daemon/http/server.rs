//! The server under [`super::route`]: hyper's HTTP/1 on a one-thread tokio runtime, with bounds
//! that keep a connection flood (slow or idle clients, endless headers, huge bodies) from
//! exhausting the daemon's threads or memory, and a reserve that keeps the probes answering
//! through it.
//!
//! Connections are served in two pools. The first `max_connections` get every path. Past that,
//! up to `probe_connections` more are read only for `/healthz`, `/readyz` and `/metrics`, with a
//! short deadline for their request; other paths there get a 503 that says why. When that
//! reserve is full too, its oldest connection that has not sent a whole request yet is closed to
//! make room (a probe sends its request at once, a slow client does not), and a newcomer finding
//! every reserved connection inside a request gets a 503 and is closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{route, Request, Response, Site};
use crate::runtime::worker::Worker;

/// The first pool: a status page holds a few connections per browser tab (images and polls),
/// so this is dozens of viewers; each costs a task and a read buffer of a few kB, not a thread.
pub const MAX_CONNECTIONS: usize = 128;
/// The reserve past [`MAX_CONNECTIONS`] for the probes and the scraper: a kubelet and a
/// Prometheus or two need a handful at a time.
pub const PROBE_CONNECTIONS: usize = 16;
/// Time to send a whole request head, counted from the connection's opening or the previous
/// response: a client on a LAN sends it in milliseconds, a slow link in well under a second.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A kept-alive connection that sends nothing for this long after a response is closed. The
/// status page asks every second at most, so its connections stay open between polls.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest request head (request line and headers): a browser's with cookies is under
/// 2 kB. Past it the answer is 431. No request here has a body; one is refused with 413.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// A reserved connection's deadline for its request: probes send theirs as they connect.
const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// Threads that answer requests which wait (a snapshot waits up to 2 s for its camera's next
/// frame); the event loop itself is one more thread. These bound the HTTP side's threads.
const BLOCKING_THREADS: usize = 4;
/// After an accept error (out of file descriptors, most likely), wait this long before the next,
/// so that the loop does not spin while the flood that caused it holds them.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// What a connection past both pools gets before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 44\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections to the daemon; retry\r\n\r\n";

/// Where the HTTP side stops a flood (`[metrics]` in the config); see the constants for the
/// defaults and why.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub probe_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: MAX_CONNECTIONS,
            probe_connections: PROBE_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
            max_header_bytes: MAX_HEADER_BYTES,
        }
    }
}

/// A value of [`HttpLimits`] that cannot work, with the `[metrics]` key it came from.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum HttpLimitsError {
    #[error("{value} is out of range; allowed: {lo} to {hi} ({why})")]
    OutOfRange {
        key: &'static str,
        value: u64,
        lo: u64,
        hi: u64,
        why: &'static str,
    },
    #[error("the idle timeout ({idle_ms} ms) is longer than the header timeout ({header_ms} ms), which already closes a connection that sends no request in that time: make it shorter")]
    IdleLongerThanHeader { idle_ms: u64, header_ms: u64 },
}

impl HttpLimitsError {
    /// The `[metrics]` key whose value is wrong.
    pub fn key(&self) -> &'static str {
        match self {
            HttpLimitsError::OutOfRange { key, .. } => key,
            HttpLimitsError::IdleLongerThanHeader { .. } => "idle_timeout_ms",
        }
    }
}

impl HttpLimits {
    /// Whether these limits can serve: each within what a file-descriptor limit, a browser and
    /// a probe allow, and the idle timeout inside the header timeout.
    pub fn validate(&self) -> Result<(), HttpLimitsError> {
        let ms = |d: Duration| d.as_millis() as u64;
        let checks: [(&'static str, u64, u64, u64, &'static str); 5] = [
            (
                "max_connections",
                self.max_connections as u64,
                1,
                4096,
                "each holds a file descriptor; the daemon's limit is shared with cameras and recordings",
            ),
            (
                "probe_connections",
                self.probe_connections as u64,
                1,
                1024,
                "at least one keeps the probes answering while the first pool is full",
            ),
            (
                "header_timeout_ms",
                ms(self.header_timeout),
                100,
                120_000,
                "under 100 ms refuses clients on a slow link; minutes let a flood hold connections",
            ),
            (
                "idle_timeout_ms",
                ms(self.idle_timeout),
                100,
                120_000,
                "how long a kept-alive connection may sit between requests",
            ),
            (
                "max_header_bytes",
                self.max_header_bytes as u64,
                1024,
                1 << 20,
                "a browser's request head with cookies is under 2 kB",
            ),
        ];
        for (key, value, lo, hi, why) in checks {
            if !(lo..=hi).contains(&value) {
                return Err(HttpLimitsError::OutOfRange {
                    key,
                    value,
                    lo,
                    hi,
                    why,
                });
            }
        }
        if self.idle_timeout > self.header_timeout {
            return Err(HttpLimitsError::IdleLongerThanHeader {
                idle_ms: ms(self.idle_timeout),
                header_ms: ms(self.header_timeout),
            });
        }
        Ok(())
    }
}

/// The HTTP side's own figures, exported with the daemon's.
#[derive(Clone, Debug, Default)]
pub struct HttpStats {
    /// Connections open now, both pools.
    pub open: Gauge,
    /// Connections turned away: a 503 past the bounds, or a slow reserved one closed for a
    /// newcomer.
    pub refused: Counter,
    /// Connections closed because their request head did not arrive in time.
    pub timed_out: Counter,
}

impl HttpStats {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "nircolor_http_connections_open",
            "Connections open to the metrics and status port",
            self.open.clone(),
        );
        registry.register(
            "nircolor_http_connections_refused",
            "Connections turned away past the bounds of [metrics]: answered 503, or (slow, in the probes' reserve) closed to make room",
            self.refused.clone(),
        );
        registry.register(
            "nircolor_http_requests_timed_out",
            "Connections closed because their request head did not arrive within the header timeout",
            self.timed_out.clone(),
        );
    }
}

/// Serves `site` on `addr` until stopped, within `limits`.
pub fn serve(addr: SocketAddr, limits: HttpLimits, site: Arc<Site>) -> std::io::Result<Worker> {
    limits
        .validate()
        .map_err(|e| std::io::Error::other(format!("[metrics] {}: {e}", e.key())))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("http-wait")
        .build()?;
    // Bound here, in the runtime the server then runs on, so that a port in use fails the start.
    let listener = runtime
        .block_on(async { listen(addr) })
        .map_err(|e| std::io::Error::other(format!("metrics on {addr}: {e}")))?;
    Worker::spawn("metrics".into(), move |stop| {
        runtime.block_on(accept(listener, limits, site, stop));
        // Requests still waiting for a snapshot end within its 2 s wait; do not hold up stop.
        runtime.shutdown_background();
    })
}

/// A listening socket on `addr` with a backlog deep enough for a burst of connections to wait
/// for the accept loop instead of having their SYNs dropped (a dropped SYN costs a probe a 1 s
/// retransmission, its whole timeout).
fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    /// Linux's default cap (net.core.somaxconn): with 1024, a 2,000-client flood reconnecting
    /// while the CPU was saturated filled the queue, and 3 of about 4,800 probes lost their SYN.
    const BACKLOG: u32 = 4096;
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// A connection in the probes' reserve.
struct Reserved {
    task: tokio::task::JoinHandle<()>,
    /// Set when its request head has arrived: from then on it is being answered, not waiting.
    requested: Arc<AtomicBool>,
}

async fn accept(
    listener: tokio::net::TcpListener,
    limits: HttpLimits,
    site: Arc<Site>,
    stop: &AtomicBool,
) {
    /// How often the loop looks at the stop flag while no connection arrives.
    const STOP_POLL: Duration = Duration::from_millis(100);
    let limits = Arc::new(limits);
    let first = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // Oldest first.
    let mut reserve: Vec<Reserved> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let stream = tokio::select! {
            r = listener.accept() => r,
            () = tokio::time::sleep(STOP_POLL) => continue,
        };
        let stream = match stream {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!("accepting an HTTP connection: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // A turn for the connections already accepted before the next: a probe's task then
        // reads its request (sent with the connect) before a burst of newcomers could take its
        // place in the reserve.
        tokio::task::yield_now().await;
        if first.load(Ordering::SeqCst) < limits.max_connections {
            first.fetch_add(1, Ordering::SeqCst);
            let (site, limits, first) = (site.clone(), limits.clone(), first.clone());
            tokio::spawn(async move {
                // Given back however the task ends, a panic in a handler included.
                let _slot = Slot(&first);
                connection(stream, &site, &limits, None).await;
            });
            continue;
        }
        reserve.retain(|r| !r.task.is_finished());
        if reserve.len() >= limits.probe_connections {
            if let Some(i) = reserve
                .iter()
                .position(|r| !r.requested.load(Ordering::SeqCst))
            {
                reserve.remove(i).task.abort();
                site.stats.refused.inc();
            }
        }
        if reserve.len() >= limits.probe_connections {
            site.stats.refused.inc();
            // The answer fits any socket buffer, so it never blocks the loop; a client that
            // does not read it just sees the close.
            let _ = stream.try_write(BUSY);
            continue;
        }
        let requested = Arc::new(AtomicBool::new(false));
        let (site, limits, flag) = (site.clone(), limits.clone(), requested.clone());
        let task = tokio::spawn(async move {
            connection(stream, &site, &limits, Some(&flag)).await;
        });
        reserve.push(Reserved { task, requested });
    }
}

/// What a connection has done, for its idle timeout.
#[derive(Default)]
struct Activity {
    /// Bytes read so far.
    read: std::sync::atomic::AtomicU64,
    /// While a request is being answered.
    busy: AtomicBool,
    /// When the last response was made, and the bytes read by then.
    answered: Mutex<Option<(Instant, u64)>>,
}

impl Activity {
    /// How long the connection has sat idle after a response with nothing read since, if so.
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::SeqCst) {
            return None;
        }
        let (at, read) = (*self.answered.lock().ok()?)?;
        (read == self.read.load(Ordering::SeqCst)).then(|| at.elapsed())
    }

    /// Returns once the connection has sat idle for `limit` after a response.
    async fn idle(&self, limit: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A TCP stream that counts what it reads into an [`Activity`].
struct Counted {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.activity.read.fetch_add(read, Ordering::SeqCst);
        polled
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A place in the first pool, given back when dropped.
struct Slot<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a connection open for as long as it lives.
struct Open<'a>(&'a Gauge);

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves one connection: every path, or (in the reserve, `requested` given) the probes only.
async fn connection(
    stream: TcpStream,
    site: &Arc<Site>,
    limits: &HttpLimits,
    requested: Option<&Arc<AtomicBool>>,
) {
    site.stats.open.inc();
    let _open = Open(&site.stats.open);
    let reserved = requested.is_some();
    let activity = Arc::new(Activity::default());
    let io = TokioIo::new(Counted {
        inner: stream,
        activity: activity.clone(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(if reserved {
            PROBE_HEADER_TIMEOUT.min(limits.header_timeout)
        } else {
            limits.header_timeout
        })
        .max_header_size(limits.max_header_bytes)
        // hyper's floor for its read buffer; the head limit above is what bounds a request.
        .max_buf_size((limits.max_header_bytes + 1024).max(8192))
        .keep_alive(!reserved);
    let service = {
        let (site, activity) = (site.clone(), activity.clone());
        let requested = requested.cloned();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let (site, activity) = (site.clone(), activity.clone());
            if let Some(r) = &requested {
                r.store(true, Ordering::SeqCst);
            }
            activity.busy.store(true, Ordering::SeqCst);
            async move {
                let response = answer(&site, reserved, request).await;
                if let Ok(mut answered) = activity.answered.lock() {
                    *answered = Some((Instant::now(), activity.read.load(Ordering::SeqCst)));
                }
                activity.busy.store(false, Ordering::SeqCst);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let served = tokio::select! {
        r = conn.as_mut() => r,
        () = activity.idle(limits.idle_timeout) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = served {
        if e.is_timeout() {
            site.stats.timed_out.inc();
        }
        tracing::debug!("HTTP connection: {e}");
    }
}

/// The paths a reserved connection is served.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Answers one request: checked for what this server accepts, then routed.
async fn answer(
    site: &Arc<Site>,
    reserved: bool,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = reply(Response::text(
            405,
            format!(
                "{} is not served here: every path answers GET (and HEAD)\n",
                request.method()
            ),
        ));
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let headers = request.headers();
    let has_body = headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body {
        // The body is never read: the connection closes after this answer.
        let mut r = reply(Response::text(413, "requests here have no body\n".into()));
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let url = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let parsed = Request::new(
        &url,
        headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    );
    if reserved && !is_probe(&parsed.path) {
        let mut r = reply(Response::text(
            503,
            format!(
                "busy: the daemon's HTTP connections are all in use, so only /healthz, /readyz and /metrics are answered now ([metrics] max_connections); try {} again in a moment\n",
                parsed.path
            ),
        ));
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return r;
    }
    let routed = if parsed.path.starts_with("/snapshot/") {
        // A snapshot waits for its camera's next frame: off the event loop.
        let site = site.clone();
        tokio::task::spawn_blocking(move || route(&site, &parsed))
            .await
            .unwrap_or_else(|e| Response::text(500, format!("answering the snapshot: {e}\n")))
    } else {
        route(site, &parsed)
    };
    reply(routed)
}

fn reply(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *response.status_mut() =
        StatusCode::from_u16(r.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(r.kind));
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(name, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limits_are_valid_and_each_bound_is_checked() {
        assert_eq!(HttpLimits::default().validate(), Ok(()));
        let zero = HttpLimits {
            max_connections: 0,
            ..Default::default()
        };
        let e = zero.validate().unwrap_err();
        assert_eq!(e.key(), "max_connections");
        assert!(e.to_string().contains("allowed: 1 to 4096"), "{e}");
        let no_reserve = HttpLimits {
            probe_connections: 0,
            ..Default::default()
        };
        assert_eq!(
            no_reserve.validate().unwrap_err().key(),
            "probe_connections"
        );
        let idle = HttpLimits {
            idle_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let e = idle.validate().unwrap_err();
        assert_eq!(e.key(), "idle_timeout_ms");
        assert!(e.to_string().contains("shorter"), "{e}");
    }
}
