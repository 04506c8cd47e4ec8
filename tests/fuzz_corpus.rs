//! The fuzz targets' bodies (`nircolor::fuzzing`) over their seeds, the shipped files `make
//! fuzz` starts from, and over every input kept in `fuzz/regressions/TARGET/` (what a fuzzer
//! once found): each must return without panicking. The coverage-guided runs are `make fuzz`.

mod common;

use std::path::PathBuf;

/// The shipped files each target's corpus is seeded with (as `make fuzz` does).
fn seeds(target: &str) -> Vec<PathBuf> {
    let root = common::root();
    let files = |dir: &str, ext: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort();
        v
    };
    match target {
        "config" => files("pipelines", "toml"),
        "calibration" => files("calibration", "toml"),
        "weights" => vec![
            root.join("models/linear.safetensors"),
            root.join("models/l3.safetensors"),
        ],
        "nir_image" => files("samples/nir", "png"),
        _ => Vec::new(),
    }
}

/// A fuzz target's body.
type Target = fn(&[u8]);

fn regressions(target: &str) -> Vec<PathBuf> {
    std::fs::read_dir(common::root().join("fuzz/regressions").join(target))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_seed_and_regression_input_returns_without_a_panic() {
    let targets: [(&str, Target); 5] = [
        ("config", nircolor::fuzzing::config),
        ("calibration", nircolor::fuzzing::calibration),
        ("weights", nircolor::fuzzing::weights),
        ("nir_image", nircolor::fuzzing::nir_image),
        ("http", nircolor::fuzzing::http),
    ];
    // The requests scripts/fuzz seeds the http target with.
    let requests: [&[u8]; 4] = [
        b"\x00/status.json\nAuthorization: Bearer 0123456789abcdef\n",
        b"\x01/?token=0123456789abcdef\nCookie: a=b; nircolor_token=0123456789abcdef\n",
        b"\x02/snapshot/cam.jpg?view=nir&t=1\n",
        b"\x00/metrics\n",
    ];
    let mut ran = 0;
    for (name, run) in targets {
        let files = seeds(name).into_iter().chain(regressions(name));
        let mut inputs: Vec<(String, Vec<u8>)> = files
            .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
            .collect();
        if name == "http" {
            inputs.extend(
                requests
                    .iter()
                    .map(|r| ("a request".to_string(), r.to_vec())),
            );
        }
        for (input, bytes) in inputs {
            // Truncations and bit flips of each input too: the cheap half of what a fuzzer
            // tries first.
            let mut variants = vec![bytes.clone()];
            for cut in [
                bytes.len() / 2,
                bytes.len().saturating_sub(1),
                16.min(bytes.len()),
            ] {
                variants.push(bytes[..cut].to_vec());
            }
            for i in (0..bytes.len()).step_by((bytes.len() / 64).max(1)) {
                let mut v = bytes.clone();
                v[i] ^= 0x5a;
                variants.push(v);
            }
            for v in variants {
                let outcome = std::panic::catch_unwind(|| run(&v));
                assert!(outcome.is_ok(), "{name} panicked on a variant of {input}");
                ran += 1;
            }
        }
    }
    assert!(ran > 200, "only {ran} inputs");
}
