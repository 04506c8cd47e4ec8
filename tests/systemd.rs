//! systemd integration: the unit passes `systemd-analyze verify`, and under a notify socket the
//! daemon reports READY=1, sends watchdog keep-alives while frames flow, and STOPPING=1.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_unit_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/nircolor@.service"
    ))
    .unwrap();
    // verify wants an instance of the template and an executable that exists.
    let path = dir.path().join("nircolor@demo.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/nircolor", env!("CARGO_BIN_EXE_nircolor")),
    )
    .unwrap();
    let out = common::output_within(
        Command::new("systemd-analyze").arg("verify").arg(&path),
        common::CLIENT_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "DeviceAllow=char-video4linux",
        "SupplementaryGroups=video",
        "ReadWritePaths=",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
}

/// `nircolor run` on one test camera (FPS, WIDTHxHEIGHT) under a notify socket and a watchdog of
/// `watchdog_ms`: the socket (reads time out after `read_ms`) and the process.
fn run_notified(
    dir: &std::path::Path,
    fps: u32,
    (width, height): (u32, u32),
    watchdog_ms: u64,
    read_ms: u64,
) -> (UnixDatagram, common::Reaped) {
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(read_ms)))
        .unwrap();
    let (rtsp, metrics) = (common::free_port(), common::free_port());
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\nweights = \"identity\"\n[rtsp]\nport = {rtsp}\n[metrics]\nbind = \"127.0.0.1:{metrics}\"\n\
             [[camera]]\nid = \"c\"\nsource = {{ kind = \"test\" }}\nformat = \"GRAY8\"\nwidth = {width}\nheight = {height}\nfps = {fps}\n"
        ),
    )
    .unwrap();
    let child = common::Reaped(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", (watchdog_ms * 1000).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (socket, child)
}

#[test]
fn run_notifies_ready_keeps_the_watchdog_fed_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, mut child) = run_notified(dir.path(), 30, (160, 120), 400, 200);
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    let started = Instant::now();
    let mut signalled = false;
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let pings = messages.iter().filter(|m| *m == "WATCHDOG=1").count();
        if pings >= 3 && !signalled {
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            signalled = true;
        }
        if messages.iter().any(|m| m == "STOPPING=1") {
            break;
        }
    }
    let status = common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(
        messages
            .first()
            .is_some_and(|m| m.starts_with("READY=1\nSTATUS=serving 1 camera(s)")),
        "{messages:?}"
    );
    assert!(
        messages.iter().filter(|m| *m == "WATCHDOG=1").count() >= 3,
        "{messages:?}"
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("STOPPING=1"),
        "{messages:?}"
    );
}

/// The keep-alives `run` sends over `seconds` with a watchdog of `watchdog_ms`, for one test
/// camera at `fps`.
fn keep_alives(fps: u32, watchdog_ms: u64, seconds: u64) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (socket, mut child) = run_notified(dir.path(), fps, (64, 48), watchdog_ms, 100);
    let mut buf = [0u8; 512];
    // Counted from the first encoded frame on: READY=1 comes before the camera is up.
    let mut counting_since: Option<Instant> = None;
    let mut pings = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds + 15) {
        if let Ok(n) = socket.recv(&mut buf) {
            if &buf[..n] == b"WATCHDOG=1" {
                match counting_since {
                    None => counting_since = Some(Instant::now()),
                    Some(_) => pings += 1,
                }
            }
        }
        if counting_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(seconds)) {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(common::wait_within(&mut child, common::STOP_LIMIT, "run after SIGTERM").success());
    assert!(counting_since.is_some(), "no keep-alive at all");
    pings
}

#[test]
fn keep_alives_stop_while_no_frame_makes_it_through() {
    // With a 0.4 s watchdog a keep-alive is due every 0.2 s. A camera at 30 fps feeds every one;
    // a camera at 1 fps leaves the stages idle between its frames while it is up, which is
    // what a stalled inference or encoder stage looks like to the watchdog: those keep-alives
    // are withheld, about four of every five.
    let flowing = keep_alives(30, 400, 4);
    let starved = keep_alives(1, 400, 4);
    assert!(
        flowing >= 12,
        "30 fps: {flowing} keep-alives in 4 s (due: 16 to 20)"
    );
    assert!(
        (2..=7).contains(&starved),
        "1 fps: {starved} keep-alives in 4 s (one per frame expected)"
    );
}

#[test]
fn the_service_user_reads_a_tls_key_owned_root_group_readable_as_documented() {
    use std::os::unix::fs::PermissionsExt;
    // The unit runs nircolor as an unprivileged user; the unit's comments say to keep secrets
    // root-owned, group-readable by that user's group (0640). Here `nobody`/`nogroup` stand in
    // for `nircolor`/`nircolor` (no systemd runs these tests), and `check`, which opens the key
    // as `run` does, is run as that user.
    let dir = tempfile::Builder::new().tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let openssl = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=camera",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(openssl.status.success(), "{}", common::stderr(&openssl));
    let config = dir.path().join("tls.toml");
    std::fs::write(
        &config,
        "[model]\nweights = \"l3\"\n[rtsp]\ntls_certificate = \"cert.pem\"\ntls_key = \"key.pem\"\n\
         [[camera]]\nid = \"c\"\nsource = { kind = \"test\" }\nformat = \"GRAY8\"\nwidth = 64\nheight = 48\nfps = 10\n",
    )
    .unwrap();
    for f in ["tls.toml", "cert.pem"] {
        std::fs::set_permissions(dir.path().join(f), std::fs::Permissions::from_mode(0o644))
            .unwrap();
    }
    let key = dir.path().join("key.pem");
    let chown = Command::new("chown")
        .args(["root:nogroup"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(
        chown.success(),
        "the test runs as root, as on the project's machines and CI"
    );
    let check_as_service_user = || {
        common::output_within(
            Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_nircolor"))
                .args(["check", "--config"])
                .arg(&config),
            common::COMMAND_LIMIT,
        )
    };
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = check_as_service_user();
    assert!(out.status.success(), "{}", common::stderr(&out));
    // Without the group's read bit the same user is refused, with the file named.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = check_as_service_user();
    let err = common::stderr(&out);
    assert!(!out.status.success(), "a 0600 root key was readable");
    assert!(
        err.contains("rtsp.tls_key") && err.contains("key.pem") && err.contains("ermission denied"),
        "{err}"
    );
}
