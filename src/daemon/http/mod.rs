//! The daemon's HTTP side (the `[metrics]` bind): Prometheus `/metrics`, `/healthz`, `/readyz`,
//! and the status page with its `/status.json` and `/snapshot/CAMERA.jpg`. The page and the
//! snapshots show live video of people's homes and cars, so they are guarded by [`Access`].
//! [`server`] serves [`route`] within the bounds of `[metrics]`.

pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::telemetry::Telemetry;
pub use server::{serve, HttpLimits, HttpLimitsError, HttpStats};

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
    /// The client accepts OpenMetrics (`Accept: application/openmetrics-text`), as Prometheus
    /// asks by default.
    pub openmetrics: bool,
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
            } else if name.eq_ignore_ascii_case("accept") {
                request.openmetrics = value.contains("application/openmetrics-text");
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

/// What the HTTP side serves: the daemon's telemetry, who may see its pictures, and the metric
/// registry that `/metrics` encodes (the telemetry's families and the server's own).
pub struct Site {
    pub telemetry: Arc<Telemetry>,
    pub access: Access,
    pub stats: HttpStats,
    registry: Registry,
}

impl Site {
    pub fn new(telemetry: Arc<Telemetry>, access: Access) -> Site {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(telemetry.clone()));
        let stats = HttpStats::default();
        stats.register(&mut registry);
        Site {
            telemetry,
            access,
            stats,
            registry,
        }
    }

    /// The exposition of every metric and its content type: OpenMetrics if asked for, else
    /// Prometheus' classic text format.
    pub fn metrics(&self, openmetrics: bool) -> (String, &'static str) {
        use prometheus_client::encoding::{prometheus_text, text};
        let mut body = String::new();
        // Writing into a String cannot fail, and the collector's only errors are the writer's.
        if openmetrics {
            let _ = text::encode(&mut body, &self.registry);
            (
                body,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        } else {
            let _ = prometheus_text::encode(&mut body, &self.registry);
            (body, prometheus_text::CONTENT_TYPE)
        }
    }
}

/// Answers `request` from `site`.
pub fn route(site: &Site, request: &Request) -> Response {
    let (telemetry, access) = (&*site.telemetry, &site.access);
    match request.path.as_str() {
        "/metrics" => {
            let (body, kind) = site.metrics(request.openmetrics);
            Response::new(200, body, kind)
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::telemetry::tests::camera;

    fn get(access: &Access, url: &str, headers: &[(&str, &str)]) -> Response {
        let t = Telemetry::for_test(vec![camera("front", true, None)]);
        let site = Site::new(Arc::new(t), access.clone());
        route(&site, &Request::new(url, headers.iter().copied()))
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
