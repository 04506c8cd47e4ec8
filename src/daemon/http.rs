//! The daemon's HTTP side (the `[metrics]` bind): Prometheus `/metrics`, `/healthz`, `/readyz`,
//! and the status page with its `/status.json` and `/snapshot/CAMERA.jpg`. The page and the
//! snapshots show live video of people's homes and cars, so they are guarded by [`Access`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::telemetry::Telemetry;
use crate::runtime::worker::Worker;

/// The cookie the status page's token is kept in once it was given in the page's URL, so that
/// the page's images and polls carry it without repeating it in every URL.
const TOKEN_COOKIE: &str = "nircolor_token";

/// Who may see the status page, `/status.json` and snapshots. `/metrics`, `/healthz` and
/// `/readyz` stay open: they are counters and states, and probes and scrapers need them.
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// Anyone who can reach the bind: a loopback bind with no token, so only this machine.
    Open,
    /// Whoever presents the token (`Authorization: Bearer`, `?token=` or the page's cookie).
    Token(String),
    /// Nobody: a non-loopback bind without a token.
    Closed { bind: SocketAddr },
}

impl Access {
    /// The policy for a bind address and an optional token.
    pub fn new(bind: SocketAddr, token: Option<String>) -> Access {
        match token {
            Some(t) => Access::Token(t),
            None if bind.ip().is_loopback() => Access::Open,
            None => Access::Closed { bind },
        }
    }

    /// Whether `request` may see private views, or (status code, why) if not.
    fn admit(&self, request: &Request) -> Result<(), (u16, String)> {
        match self {
            Access::Open => Ok(()),
            Access::Closed { bind } => Err((
                403,
                format!(
                    "the status page and snapshots show live video and are off on the non-loopback bind {bind}: set [metrics] token or token_file to serve them\n"
                ),
            )),
            Access::Token(want) => {
                let given = [
                    request.bearer.as_deref(),
                    request.param("token"),
                    request.cookie.as_deref(),
                ];
                if given.iter().flatten().any(|g| same(g, want)) {
                    Ok(())
                } else {
                    Err((
                        401,
                        "a token is required: open /?token=TOKEN, or send Authorization: Bearer TOKEN\n"
                            .into(),
                    ))
                }
            }
        }
    }
}

/// Compares in time independent of where the strings differ, so response times do not leak the
/// token a byte at a time.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// What routing needs of an HTTP request.
#[derive(Debug, Default)]
pub struct Request {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub bearer: Option<String>,
    /// The value of the token cookie, if sent.
    pub cookie: Option<String>,
}

impl Request {
    /// Splits `url` and picks the token-carrying headers out of `headers` (name, value).
    pub fn new<'a>(url: &str, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Request {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let query = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let mut request = Request {
            path: path.to_string(),
            query,
            ..Request::default()
        };
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") {
                request.bearer = value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
            } else if name.eq_ignore_ascii_case("cookie") {
                request.cookie = value
                    .split(';')
                    .filter_map(|c| c.trim().split_once('='))
                    .find(|(k, _)| *k == TOKEN_COOKIE)
                    .map(|(_, v)| v.to_string());
            }
        }
        request
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP answer: status, body, content type, extra headers.
#[derive(Debug)]
pub struct Response {
    pub code: u16,
    pub body: Vec<u8>,
    pub kind: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    fn new(code: u16, body: impl Into<Vec<u8>>, kind: &'static str) -> Response {
        Response {
            code,
            body: body.into(),
            kind,
            headers: Vec::new(),
        }
    }

    fn text(code: u16, body: String) -> Response {
        Response::new(code, body, "text/plain; charset=utf-8")
    }

    /// Live views must not be cached by browsers or proxies.
    fn private(mut self) -> Response {
        self.headers.push(("Cache-Control", "no-store".into()));
        self
    }
}

/// Answers `request` from `telemetry` under `access`.
pub fn route(telemetry: &Telemetry, access: &Access, request: &Request) -> Response {
    match request.path.as_str() {
        "/metrics" => Response::new(200, telemetry.metrics(), "text/plain; version=0.0.4"),
        "/healthz" => {
            let (code, body) = telemetry.health();
            Response::new(code, body, "application/json")
        }
        "/readyz" => {
            let (code, body) = telemetry.ready();
            Response::new(code, body, "application/json")
        }
        "/" | "/index.html" | "/status.json" => {
            if let Err((code, why)) = access.admit(request) {
                return Response::text(code, why);
            }
            if request.path == "/status.json" {
                return Response::new(
                    200,
                    super::status::json(telemetry).to_string(),
                    "application/json",
                )
                .private();
            }
            let mut page = Response::new(
                200,
                super::status::PAGE,
                "text/html; charset=utf-8",
            )
            .private();
            // A token given in the page's URL moves into a cookie: the page's images and polls
            // then carry it, and it need not stay in the address bar or in links.
            if let (Access::Token(_), Some(token)) = (access, request.param("token")) {
                page.headers.push((
                    "Set-Cookie",
                    format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
                ));
            }
            page
        }
        path if path.starts_with("/snapshot/") => {
            if let Err((code, why)) = access.admit(request) {
                return Response::text(code, why);
            }
            let name = path.trim_start_matches("/snapshot/");
            match telemetry.snapshot(name, request.param("view")) {
                Ok(jpeg) => Response::new(200, jpeg, "image/jpeg").private(),
                Err((code, why)) => Response::text(code, why + "\n"),
            }
        }
        _ => Response::text(
            404,
            "not found: try / (the status page), /status.json, /metrics, /healthz, /readyz or /snapshot/CAMERA.jpg?view=nir|colour\n"
                .to_string(),
        ),
    }
}

/// Serves [`route`] on `addr` until stopped. Each request is answered on its own short-lived
/// thread: a snapshot waits up to two seconds for its camera's next frame, and neither a probe
/// nor the other cameras' images should queue behind it.
pub fn serve(
    addr: SocketAddr,
    access: Access,
    telemetry: Arc<Telemetry>,
) -> std::io::Result<Worker> {
    /// More requests in flight than this are answered 503 at once: a page per camera refreshing
    /// two images a few times a second is far below it, a flood is not.
    const MAX_IN_FLIGHT: usize = 64;
    let server = tiny_http::Server::http(addr)
        .map_err(|e| std::io::Error::other(format!("metrics on {addr}: {e}")))?;
    let access = Arc::new(access);
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Worker::spawn("metrics".into(), move |stop| {
        while !stop.load(Ordering::SeqCst) {
            let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_IN_FLIGHT {
                in_flight.fetch_sub(1, Ordering::SeqCst);
                respond(request, Response::text(503, "busy; try again\n".into()));
                continue;
            }
            let (telemetry, access, in_flight) =
                (telemetry.clone(), access.clone(), in_flight.clone());
            let spawned = std::thread::Builder::new()
                .name("http".into())
                .spawn(move || {
                    let parsed = Request::new(
                        request.url(),
                        request
                            .headers()
                            .iter()
                            .map(|h| (h.field.as_str().as_str(), h.value.as_str())),
                    );
                    respond(request, route(&telemetry, &access, &parsed));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot answer an HTTP request: {e}");
            }
        }
    })
}

fn respond(request: tiny_http::Request, r: Response) {
    let mut response = tiny_http::Response::from_data(r.body).with_status_code(r.code);
    let headers = std::iter::once(("Content-Type", r.kind.to_string())).chain(r.headers);
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name, value.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::telemetry::tests::camera;

    fn get(access: &Access, url: &str, headers: &[(&str, &str)]) -> Response {
        let t = Telemetry::for_test(vec![camera("front", true, None)]);
        route(&t, access, &Request::new(url, headers.iter().copied()))
    }

    #[test]
    fn a_loopback_bind_without_a_token_serves_the_page_to_this_machine() {
        let open = Access::new("127.0.0.1:9464".parse().unwrap(), None);
        assert_eq!(open, Access::Open);
        let page = get(&open, "/", &[]);
        assert_eq!(page.code, 200);
        assert!(String::from_utf8_lossy(&page.body).contains("<title>nircolor"));
        let status = get(&open, "/status.json", &[]);
        let v: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
        assert_eq!(v["cameras"][0]["id"], "front");
    }

    #[test]
    fn a_public_bind_without_a_token_serves_no_picture_but_still_its_probes() {
        let closed = Access::new("0.0.0.0:9464".parse().unwrap(), None);
        for url in ["/", "/status.json", "/snapshot/front.jpg"] {
            let r = get(&closed, url, &[]);
            assert_eq!(r.code, 403, "{url}");
            assert!(String::from_utf8_lossy(&r.body).contains("[metrics] token"));
        }
        assert_eq!(get(&closed, "/healthz", &[]).code, 200);
        assert_eq!(get(&closed, "/metrics", &[]).code, 200);
    }

    #[test]
    fn a_token_is_taken_from_the_header_the_query_or_the_cookie_and_nothing_else() {
        let token = Access::new(
            "0.0.0.0:9464".parse().unwrap(),
            Some("s3cret-token-0123456789".into()),
        );
        assert_eq!(get(&token, "/status.json", &[]).code, 401);
        assert_eq!(get(&token, "/status.json?token=wrong", &[]).code, 401);
        assert_eq!(
            get(
                &token,
                "/status.json",
                &[("Authorization", "Bearer s3cret-token-012345678")]
            )
            .code,
            401,
            "a prefix of the token"
        );
        assert_eq!(
            get(
                &token,
                "/status.json",
                &[("Authorization", "Bearer s3cret-token-0123456789")]
            )
            .code,
            200
        );
        let page = get(&token, "/?token=s3cret-token-0123456789", &[]);
        assert_eq!(page.code, 200);
        let cookie = page
            .headers
            .iter()
            .find(|(k, _)| *k == "Set-Cookie")
            .map(|(_, v)| v.clone())
            .expect("the token moves into a cookie");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let sent = cookie.split(';').next().unwrap().to_string();
        assert_eq!(
            get(
                &token,
                "/status.json",
                &[("Cookie", &format!("theme=dark; {sent}"))]
            )
            .code,
            200
        );
    }

    #[test]
    fn unknown_paths_and_views_say_what_exists() {
        let r = get(&Access::Open, "/nope", &[]);
        assert_eq!(r.code, 404);
        assert!(String::from_utf8_lossy(&r.body).contains("/status.json"));
        let r = get(&Access::Open, "/snapshot/front.jpg?view=thermal&t=1", &[]);
        assert_eq!(r.code, 400, "{}", String::from_utf8_lossy(&r.body));
        let r = get(&Access::Open, "/snapshot/back.jpg", &[]);
        assert_eq!(r.code, 404);
        assert!(String::from_utf8_lossy(&r.body).contains("front"));
    }
}
