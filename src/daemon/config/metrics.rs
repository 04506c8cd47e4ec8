//! The `[metrics]` section's checks: the status page's token, and the HTTP side's bounds.

use std::time::Duration;

use toml::Spanned;

use super::{Checker, ConfigError, RawMetrics};

/// Shortest status page token: 16 characters of the allowed 64 are 96 bits, beyond guessing
/// over HTTP.
const MIN_TOKEN_LEN: usize = 16;

/// `[metrics] token` or `token_file`, checked: long enough, and of characters that pass through
/// a URL, a cookie and a header unchanged.
pub(super) fn metrics_token(c: &Checker, m: &RawMetrics) -> Result<Option<String>, ConfigError> {
    let (token, span, key) = match (&m.token, &m.token_file) {
        (None, None) => return Ok(None),
        (Some(_), Some(f)) => {
            return Err(c.err(
                &f.span(),
                "metrics.token_file",
                "give token or token_file, not both",
            ))
        }
        (Some(t), None) => (t.get_ref().clone(), t.span(), "metrics.token"),
        (None, Some(f)) => {
            let path = c.path(f.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                c.err(
                    &f.span(),
                    "metrics.token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            (text.trim().to_string(), f.span(), "metrics.token_file")
        }
    };
    let allowed = |ch: char| ch.is_ascii_alphanumeric() || "-._~".contains(ch);
    if token.chars().count() < MIN_TOKEN_LEN || !token.chars().all(allowed) {
        return Err(c.err(
            &span,
            key,
            format!(
                "the token must be at least {MIN_TOKEN_LEN} characters of letters, digits, '-', '.', '_' and '~'; e.g. `head -c 24 /dev/urandom | base64 | tr '+/' '-_'`"
            ),
        ));
    }
    Ok(Some(token))
}

/// `[metrics]` bounds against a connection flood: the defaults of `HttpLimits` where not set,
/// checked by its `validate`, an error pointing at the key that is wrong.
pub(super) fn metrics_limits(
    c: &Checker,
    m: &RawMetrics,
) -> Result<crate::daemon::http::HttpLimits, ConfigError> {
    let mut l = crate::daemon::http::HttpLimits::default();
    let get = |v: &Option<Spanned<u64>>| v.as_ref().map(|v| *v.get_ref());
    if let Some(n) = get(&m.max_connections) {
        l.max_connections = n as usize;
    }
    if let Some(n) = get(&m.probe_connections) {
        l.probe_connections = n as usize;
    }
    if let Some(ms) = get(&m.header_timeout_ms) {
        l.header_timeout = Duration::from_millis(ms);
    }
    if let Some(ms) = get(&m.idle_timeout_ms) {
        l.idle_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = get(&m.max_header_bytes) {
        l.max_header_bytes = n as usize;
    }
    l.validate().map_err(|e| {
        let span = match e.key() {
            "max_connections" => &m.max_connections,
            "probe_connections" => &m.probe_connections,
            "header_timeout_ms" => &m.header_timeout_ms,
            "idle_timeout_ms" => &m.idle_timeout_ms,
            _ => &m.max_header_bytes,
        }
        .as_ref()
        .map_or(0..0, |v| v.span());
        c.err(&span, &format!("metrics.{}", e.key()), e.to_string())
    })?;
    Ok(l)
}
