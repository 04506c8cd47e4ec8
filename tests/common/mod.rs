//! Shared helpers of the integration tests: where the real data, the reference Python and the
//! binary are, and small image fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data`, which CI places beside the clone.
pub fn shared_data() -> PathBuf {
    let d = root().join("../shared/data");
    assert!(
        d.is_dir(),
        "{} is missing: the tests use the real NIR/RGB pairs in ../shared/data",
        d.display()
    );
    d
}

/// The Python of the reference environment that `make test` (scripts/setup --venv) creates.
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `make test` or `scripts/setup --venv` first",
        p.display()
    );
    p
}

/// Runs the real `nircolor` binary.
pub fn nircolor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nircolor"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("nircolor runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A gray gradient NIR of the given size.
pub fn gray(w: u32, h: u32) -> image::GrayImage {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]))
}

pub fn rgb(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 5 % 256) as u8, (y * 9 % 256) as u8, 80])
    })
}

/// Makes `dir/nir` and `dir/rgb` holding `n` good pairs named p0, p1, ...
pub fn dataset(dir: &Path, n: usize, w: u32, h: u32) {
    std::fs::create_dir_all(dir.join("nir")).unwrap();
    std::fs::create_dir_all(dir.join("rgb")).unwrap();
    for i in 0..n {
        gray(w, h).save(dir.join(format!("nir/p{i}.png"))).unwrap();
        rgb(w, h).save(dir.join(format!("rgb/p{i}.png"))).unwrap();
    }
}

/// Reads `frames` decoded frames of an RTSP stream with ffmpeg (a real client) as packed RGB.
pub fn read_rtsp_rgb(url: &str, frames: usize) -> Output {
    Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-i",
            url,
            "-frames:v",
            &frames.to_string(),
        ])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup installs it)")
}

/// What ffprobe finds in a video file's first video stream: (frames it decodes, width, height);
/// zeros when it cannot read the file at all.
pub fn probe(file: &Path) -> (u64, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe runs (scripts/setup installs ffmpeg)");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<u64> = text
        .trim()
        .split(',')
        .map(|v| v.trim().parse().unwrap_or(0))
        .collect();
    match f[..] {
        [w, h, n] => (n, w as u32, h as u32),
        _ => (0, 0, 0),
    }
}

/// A loopback TCP port that was free a moment ago (the tests' servers bind it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
