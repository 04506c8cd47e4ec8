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
