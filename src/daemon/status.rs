//! The status page (`GET /`): one card per camera with its NIR and colour pictures side by side
//! and its figures, from `/status.json`. The page is self-contained (inline CSS and a few lines
//! of JavaScript, no external assets) because the machines it runs on are often offline.

use std::sync::atomic::Ordering;

use super::telemetry::{Telemetry, RECONNECT_WINDOW};

/// The page, served as is; it reads `/status.json` and the snapshots itself.
pub const PAGE: &str = include_str!("status.html");

/// Everything the page shows, as JSON: the daemon's model and device, and per camera its state,
/// counters (the page turns them into rates between two polls), latency quantiles, RTSP URL and
/// recording folder with the space left there.
pub fn json(t: &Telemetry) -> serde_json::Value {
    let ms = |s: Option<f64>| s.map(|s| (s * 1e4).round() / 10.0);
    let cameras: Vec<serde_json::Value> = t
        .cameras
        .iter()
        .map(|c| {
            let status = &c.status;
            let (up, finished, down_for) = (
                status.up.load(Ordering::SeqCst),
                status.finished.load(Ordering::SeqCst),
                status.down_for(),
            );
            // A camera whose retries outlast the reconnect window shows the "no signal" card.
            let state = if up {
                "streaming"
            } else if finished {
                "finished"
            } else if down_for < RECONNECT_WINDOW {
                "reconnecting"
            } else {
                "no signal"
            };
            let infer = t.infer.cameras.get(c.id.as_str());
            let latency = &c.encode.encoded_latency;
            let recorder = c.encode.recorder.get();
            let recording = c.info.record_folder.as_ref().map(|folder| {
                serde_json::json!({
                    "folder": folder.display().to_string(),
                    "free_bytes": crate::runtime::disk::free_bytes(folder),
                    "up": recorder.map(|r| r.up.load(Ordering::SeqCst)),
                    "last_error": recorder.and_then(|r| r.last_error()),
                })
            });
            serde_json::json!({
                "id": c.id,
                "state": state,
                "last_error": status.last_error(),
                "down_seconds": down_for.as_secs_f64(),
                "source": c.info.source,
                "width": c.info.width,
                "height": c.info.height,
                "fps": c.info.fps,
                "rtsp": c.info.rtsp_url,
                "recording": recording,
                "frames_captured": status.frames.load(Ordering::Relaxed),
                "frames_encoded": c.encode.frames.load(Ordering::Relaxed),
                "no_signal_frames": c.encode.no_signal.load(Ordering::Relaxed),
                "reconnects": status.restarts.load(Ordering::SeqCst),
                "dropped": {"infer": (c.capture_drops)(), "encode": (c.colour_drops)()},
                "latency_ms": {"p50": ms(latency.quantile(0.5)), "p99": ms(latency.quantile(0.99))},
                "refreshes": infer.map(|i| i.refreshes.load(Ordering::Relaxed)),
                "quality_refreshes": infer.map(|i| i.quality_refreshes.load(Ordering::Relaxed)),
                "mode": infer.map(|i| if i.day.load(Ordering::Relaxed) { "day" } else { "night" }),
                "mode_transitions": infer.map(|i| i.mode_transitions.load(Ordering::Relaxed)),
                "reference": infer.map(|i| i.reference.load(Ordering::Relaxed)),
                "moved": infer.map(|i| i.moved.load(Ordering::Relaxed)),
            })
        })
        .collect();
    serde_json::json!({
        "model": t.model,
        "device": t.device,
        "uptime_seconds": t.started.elapsed().as_secs_f64(),
        "cameras": cameras,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::telemetry::tests::camera;
    use std::time::Duration;

    #[test]
    fn the_json_has_each_camera_with_its_state_figures_and_free_space() {
        let mut cams = vec![
            camera("front", true, None),
            camera("back", false, Some(Duration::from_secs(60))),
        ];
        cams[0].info.record_folder = Some(std::env::temp_dir());
        cams[0].info.rtsp_url = "rtsp://127.0.0.1:8554/front".into();
        cams[0]
            .encode
            .encoded_latency
            .observe(Duration::from_millis(30));
        let v = json(&Telemetry::for_test(cams));
        assert_eq!(v["model"], "default");
        let front = &v["cameras"][0];
        assert_eq!(front["state"], "streaming");
        assert_eq!(front["rtsp"], "rtsp://127.0.0.1:8554/front");
        assert_eq!(front["frames_captured"], 42);
        assert_eq!(front["dropped"]["infer"], 3);
        let p50 = front["latency_ms"]["p50"].as_f64().unwrap();
        assert!(p50 > 20.0 && p50 <= 33.0, "{p50}");
        assert!(front["recording"]["free_bytes"].as_u64().unwrap() > 0);
        assert_eq!(v["cameras"][1]["state"], "no signal");
        assert!(v["cameras"][1]["recording"].is_null());
        assert!(v["cameras"][1]["latency_ms"]["p99"].is_null());
    }

    #[test]
    fn the_page_needs_nothing_from_outside() {
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(!PAGE.contains(external), "the page refers to {external}");
        }
        // Relative URLs: the page also works behind a reverse proxy's path prefix.
        assert!(PAGE.contains("\"status.json\"") && PAGE.contains("\"snapshot/\""));
        assert!(PAGE.contains("name=\"viewport\""), "readable on a phone");
    }
}
