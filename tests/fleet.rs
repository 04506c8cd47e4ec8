//! A fleet on one machine: three `nircolor run --shard i/3` processes share one configuration of
//! nine test cameras, and every camera is served by exactly one of them, over RTSP and in its
//! health and metrics.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CAMERAS: usize = 9;
const SHARDS: usize = 3;

/// The status line of an RTSP DESCRIBE of `mount` on `port` ("RTSP/1.0 200 OK", "... 404 ...").
fn describe(port: u16, mount: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "DESCRIBE rtsp://127.0.0.1:{port}{mount} RTSP/1.0\r\nCSeq: 1\r\nAccept: application/sdp\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).trim().to_string()
}

#[test]
fn three_shards_serve_each_of_nine_cameras_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    let mut text = "[model]\nweights = \"l3\"\n".to_string();
    for i in 0..CAMERAS {
        text += &format!(
            "[[camera]]\nid = \"cam-{i}\"\nsource = {{ kind = \"test\", pattern = \"ball\" }}\n\
             format = \"GRAY8\"\nwidth = 96\nheight = 64\nfps = 5\n"
        );
    }
    std::fs::write(&config, text).unwrap();

    let ports: Vec<(u16, u16)> = (0..SHARDS)
        .map(|_| (common::free_port(), common::free_port()))
        .collect();
    let _fleet: Vec<common::Reaped> = ports
        .iter()
        .enumerate()
        .map(|(i, (rtsp, metrics))| {
            common::Reaped(
                Command::new(env!("CARGO_BIN_EXE_nircolor"))
                    .args(["run", "--config", config.to_str().unwrap()])
                    .args(["--shard", &format!("{i}/{SHARDS}")])
                    .args(["--rtsp-port", &rtsp.to_string()])
                    .args(["--metrics-bind", &format!("127.0.0.1:{metrics}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();

    // Each instance's own view: the cameras its /healthz lists, once every one of them plays.
    let mut served: Vec<Vec<String>> = Vec::new();
    for (_, metrics) in &ports {
        let started = Instant::now();
        loop {
            if let Ok((status, _, _)) = common::http_get(*metrics, "/readyz", &[]) {
                if status.contains("200") {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "a shard never got ready"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let (_, _, body) = common::http_get(*metrics, "/healthz", &[]).unwrap();
        let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
        served.push(
            health["cameras"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["camera"].as_str().unwrap().to_string())
                .collect(),
        );
    }
    let mut all: Vec<&String> = served.iter().flatten().collect();
    all.sort();
    let expected: Vec<String> = (0..CAMERAS).map(|i| format!("cam-{i}")).collect();
    assert_eq!(all, expected.iter().collect::<Vec<_>>(), "{served:?}");

    // RTSP agrees: a camera's mount answers on its own shard only.
    for id in &expected {
        let answering: Vec<usize> = ports
            .iter()
            .enumerate()
            .filter(|(_, (rtsp, _))| describe(*rtsp, &format!("/{id}")).contains(" 200 "))
            .map(|(i, _)| i)
            .collect();
        let owner = served.iter().position(|s| s.contains(id)).unwrap();
        assert_eq!(answering, [owner], "{id}");
    }

    // `check --shard N` prints the same assignment before anything runs.
    let out = common::nircolor(&[
        "check",
        "--config",
        config.to_str().unwrap(),
        "--shard",
        "3",
    ]);
    let printed = common::stdout(&out);
    for (i, ids) in served.iter().enumerate() {
        let line = printed
            .lines()
            .find(|l| l.starts_with(&format!("shard {i}/3:")))
            .unwrap_or_else(|| panic!("{printed}"));
        for id in ids {
            assert!(line.contains(id.as_str()), "{line} lacks {id}");
        }
    }
    // `--shard auto` takes the index from a StatefulSet pod's name.
    let auto = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args([
                "check",
                "--config",
                config.to_str().unwrap(),
                "--shard",
                "auto",
            ])
            .env("HOSTNAME", "nircolor-2")
            .env("NIRCOLOR_SHARDS", "3"),
        Duration::from_secs(30),
    );
    let line = common::stdout(&auto);
    assert!(line.starts_with("shard 2/3:"), "{line}");
    for id in &served[2] {
        assert!(line.contains(id.as_str()), "{line}");
    }
    let missing = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_nircolor"))
            .args([
                "check",
                "--config",
                config.to_str().unwrap(),
                "--shard",
                "auto",
            ])
            .env("HOSTNAME", "nircolor-2")
            .env_remove("NIRCOLOR_SHARDS"),
        Duration::from_secs(30),
    );
    assert!(!missing.status.success());
    assert!(common::stderr(&missing).contains("NIRCOLOR_SHARDS"));
}
