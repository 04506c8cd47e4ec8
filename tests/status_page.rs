//! The status page as a person sees it: the daemon runs two test cameras and headless Chromium
//! (Debian's `chromium`, installed by `scripts/setup --venv`) loads `/`, runs its JavaScript and
//! leaves a screenshot in `target/status-page.png`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

/// How long Chromium runs the page's JavaScript (virtual time) before the DOM or the screenshot
/// is taken: four polls and a dozen picture refreshes.
const PAGE_TIME_MS: u32 = 4000;

/// Headless Chromium as the project's machines allow it (no sandbox as root, no background
/// connections to Google on a closed network), on a fresh profile.
fn chromium(profile: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::output_within(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
            ])
            .args(["--no-first-run", "--disable-background-networking"])
            .args([
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--virtual-time-budget={PAGE_TIME_MS}"))
            .args(args),
        Duration::from_secs(90),
    )
}

/// The `data-NAME` attribute values of every `<img>` in `dom`.
fn img_attributes<'a>(dom: &'a str, name: &str) -> Vec<&'a str> {
    let key = format!("data-{name}=\"");
    dom.split("<img")
        .skip(1)
        .map(|tag| {
            let tag = tag.split('>').next().unwrap_or("");
            tag.split(&key)
                .nth(1)
                .and_then(|v| v.split('"').next())
                .unwrap_or("")
        })
        .collect()
}

#[test]
fn chromium_shows_a_card_per_camera_with_both_pictures_refreshing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (common::free_port(), common::free_port());
    let camera = |id: &str, pattern: &str| {
        format!(
            "[[camera]]\nid = \"{id}\"\nsource = {{ kind = \"test\", pattern = \"{pattern}\" }}\n\
             format = \"GRAY8\"\nwidth = 320\nheight = 240\nfps = 15\n"
        )
    };
    let config = dir.path().join("two.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nweights = \"default\"\n[rtsp]\nport = {port}\n[metrics]\nbind = \"127.0.0.1:{metrics_port}\"\n{}{}",
            camera("yard", "ball"),
            camera("gate", "smpte")
        ),
    )
    .unwrap();
    let _daemon = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !common::http_get(metrics_port, "/readyz", &[]).is_ok_and(|r| r.0.contains("200")) {
        assert!(started.elapsed() < Duration::from_secs(60), "never ready");
        std::thread::sleep(Duration::from_millis(200));
    }
    let url = format!("http://127.0.0.1:{metrics_port}/");

    let out = chromium(&dir.path().join("profile-dom"), &["--dump-dom", &url]);
    let dom = common::stdout(&out);
    assert!(out.status.success(), "{}", common::stderr(&out));
    for id in ["yard", "gate"] {
        assert!(
            dom.contains(&format!("data-camera=\"{id}\"")),
            "no card for {id}:\n{dom}"
        );
    }
    assert!(dom.contains(">streaming<"), "state shown:\n{dom}");
    assert!(
        dom.contains(&format!("rtsp://127.0.0.1:{port}/yard")),
        "{dom}"
    );
    // Four pictures (NIR and colour of each camera), each decoded by the browser at the
    // camera's size and replaced by newer ones while the page ran.
    let views = img_attributes(&dom, "view");
    assert_eq!(views, ["nir", "colour", "nir", "colour"], "{dom}");
    for size in img_attributes(&dom, "size") {
        assert_eq!(size, "320x240", "{dom}");
    }
    for loads in img_attributes(&dom, "loads") {
        let n: u32 = loads.parse().unwrap_or(0);
        assert!(
            n >= 3,
            "a picture loaded {n} times in {PAGE_TIME_MS} ms:\n{dom}"
        );
    }
    // The figures turned from "…" into rates after the second poll.
    assert!(!dom.contains("… / …"), "no rates:\n{dom}");

    // What the pictures show moves: two snapshots of the moving ball differ.
    let snap = || {
        common::http_get(metrics_port, "/snapshot/yard.jpg?view=nir", &[])
            .unwrap()
            .2
    };
    let (a, b) = (snap(), snap());
    let (a, b) = (
        image::load_from_memory(&a).unwrap().to_luma8(),
        image::load_from_memory(&b).unwrap().to_luma8(),
    );
    let changed = a
        .pixels()
        .zip(b.pixels())
        .filter(|(p, q)| p.0[0].abs_diff(q.0[0]) > 40)
        .count();
    assert!(
        changed > 50,
        "two snapshots of a moving ball differ in {changed} pixels"
    );

    let shot = common::root().join("target/status-page.png");
    let out = chromium(
        &dir.path().join("profile-shot"),
        &[
            "--window-size=1000,760",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let png = image::open(&shot).unwrap().to_rgb8();
    assert_eq!((png.width(), png.height()), (1000, 760));
    // The cards' pictures are there: text alone lights a few thousand pixels, the test cards'
    // white ball and bars (NIR and colour) tens of thousands.
    let bright = png
        .pixels()
        .filter(|p| p.0.iter().map(|&c| u32::from(c)).sum::<u32>() > 3 * 180)
        .count();
    assert!(
        bright > 20_000,
        "{bright} bright pixels in {}",
        shot.display()
    );
}
