//! Entry points for the fuzz targets (`fuzz/`, `cargo fuzz`) and for the replay of their corpus
//! in the test suite: each takes arbitrary bytes to one parser the daemon exposes to files or
//! the network, and must return (an error is fine) without panicking.

use std::path::Path;
use std::sync::Arc;

/// A pipeline configuration (`pipelines/*.toml`), checked as `nircolor check` does.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::daemon::config::Config::parse(Path::new("fuzz/pipeline.toml"), text);
    }
}

/// A camera calibration file, parsed and prepared for a small frame.
pub fn calibration(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(cal) =
            crate::calibrate::Calibration::parse(Path::new("fuzz/calibration.toml"), text)
        {
            let _ = cal.prepare(64, 48);
        }
    }
}

/// A weights file: read, and turned into a colorizer when it is one.
pub fn weights(data: &[u8]) {
    if let Ok(w) = crate::models::weights::Weights::from_bytes(data, "fuzz.safetensors") {
        let _ = crate::models::load::from_weights(&w);
    }
}

/// A dataset's NIR image file (PNG, JPEG, TIFF), decoded as training and `eval` read it.
pub fn nir_image(data: &[u8]) {
    let _ = crate::images::read::nir_from_bytes(data, Path::new("fuzz/nir.png"));
}

/// An HTTP request to the metrics bind: the first line is the URL, the rest `Name: value`
/// headers; the first byte picks the access policy (open, token, closed).
pub fn http(data: &[u8]) {
    use crate::daemon::http::{route, Access, Request, Site};
    let Some((&policy, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.lines();
    let url = lines.next().unwrap_or("/");
    let headers: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once(": ")).collect();
    let bind = "0.0.0.0:9464".parse().expect("a valid address");
    let access = match policy % 3 {
        0 => Access::Open,
        1 => Access::Token("0123456789abcdef".into()),
        _ => Access::Closed { bind },
    };
    let telemetry = crate::daemon::telemetry::Telemetry {
        cameras: Vec::new(),
        infer: Arc::new(crate::infer::InferStats::default()),
        model: "fuzz".into(),
        device: "cpu".into(),
        started: std::time::Instant::now(),
        started_unix: 0,
    };
    let site = Site::new(Arc::new(telemetry), access);
    let _ = route(&site, &Request::new(url, headers));
}
