//! Learning curves as PNG: one run's loss per epoch and validation PSNR against training hours
//! (written beside the weights by `train`), and several runs' validation PSNR on one chart
//! (`nircolor curves`), read from the model cards.

use std::path::Path;

use crate::models::weights::Weights;
use crate::offline::plot::{charts_png, Chart, PlotError};
use crate::offline::train_net::EpochLog;

/// (training hours so far, validation PSNR) after each validated epoch.
fn psnr_by_hours(history: &[EpochLog]) -> Vec<(f64, f64)> {
    let mut seconds = 0.0;
    history
        .iter()
        .filter_map(|e| {
            seconds += e.seconds;
            e.val_psnr.map(|p| (seconds / 3600.0, p))
        })
        .collect()
}

/// Writes the curve of one run to `path`.
pub fn write(history: &[EpochLog], path: &Path) -> Result<(), PlotError> {
    let loss = history.iter().map(|e| (e.epoch as f64, e.loss)).collect();
    charts_png(
        path,
        &[
            Chart {
                title: "Training loss",
                x_label: "epoch",
                y_label: "loss (weighted sum of the terms)",
                series: vec![("train".into(), loss)],
            },
            Chart {
                title: "Validation PSNR",
                x_label: "training hours (wall clock)",
                y_label: "PSNR (dB)",
                series: vec![("validation".into(), psnr_by_hours(history))],
            },
        ],
        900,
        320,
    )
}

/// The training history recorded in a weights file's card (empty for a file without one).
pub fn history_of(weights: &Weights) -> Vec<EpochLog> {
    weights
        .card
        .get("history")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default()
}

/// Validation PSNR against training hours of several runs, one line each, into `path`.
pub fn compare(runs: &[(String, Vec<EpochLog>)], path: &Path) -> Result<(), PlotError> {
    charts_png(
        path,
        &[Chart {
            title: "Validation PSNR against training time",
            x_label: "training hours (wall clock)",
            y_label: "PSNR (dB)",
            series: runs
                .iter()
                .map(|(name, h)| (name.clone(), psnr_by_hours(h)))
                .collect(),
        }],
        900,
        420,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(n: usize, base: f64) -> Vec<EpochLog> {
        (1..=n)
            .map(|e| EpochLog {
                epoch: e,
                loss: 1.0 / e as f64,
                val_psnr: Some(base + e as f64),
                seconds: 360.0,
            })
            .collect()
    }

    #[test]
    fn hours_accumulate_the_epochs_seconds() {
        let got = psnr_by_hours(&history(3, 10.0));
        let want = [(0.1, 11.0), (0.2, 12.0), (0.3, 13.0)];
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(want) {
            assert!((g.0 - w.0).abs() < 1e-12 && g.1 == w.1, "{got:?}");
        }
    }

    #[test]
    fn one_run_and_several_runs_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.png");
        write(&history(5, 10.0), &one).unwrap();
        assert_eq!(image::open(&one).unwrap().height(), 640);
        let many = dir.path().join("many.png");
        compare(
            &[
                ("a".into(), history(5, 10.0)),
                ("b".into(), history(8, 9.0)),
            ],
            &many,
        )
        .unwrap();
        let img = image::open(&many).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (900, 420));
        // Two coloured series besides the black text and gray grid.
        let coloured = img
            .pixels()
            .filter(|p| {
                let (mx, mn) = (*p.0.iter().max().unwrap(), *p.0.iter().min().unwrap());
                mx - mn > 80
            })
            .count();
        assert!(coloured > 500, "{coloured} coloured pixels");
    }
}
