//! Learning curves as PNG: one run's loss per epoch and validation PSNR against training hours
//! (written beside the weights by `train`), and several runs' validation PSNR on one chart
//! (`nircolor curves`), read from the model cards; a run started with `--init` is drawn after
//! the hours of the runs behind it. Where a run scored training pairs too (`--fit-only`), their
//! fit is drawn beside validation: the gap between the two tells over-fitting from
//! under-fitting.

use std::path::Path;

use crate::models::weights::Weights;
use crate::offline::plot::{charts_png, Chart, PlotError};
use crate::offline::train_net::{history_in, lineage_of, EpochLog};

/// (training hours so far, PSNR) after each epoch that `score` gives a figure for, counted
/// from `start_hours`.
fn by_hours(
    history: &[EpochLog],
    start_hours: f64,
    score: impl Fn(&EpochLog) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut seconds = start_hours * 3600.0;
    history
        .iter()
        .filter_map(|e| {
            seconds += e.seconds;
            score(e).map(|p| (seconds / 3600.0, p))
        })
        .collect()
}

/// Validation PSNR by hours as `names.0`, and the training-pair fit's as `names.1` where the
/// run recorded one.
fn psnr_series(
    names: (String, String),
    history: &[EpochLog],
    start_hours: f64,
) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut series = vec![(names.0, by_hours(history, start_hours, |e| e.val_psnr))];
    let fit = by_hours(history, start_hours, |e| e.fit_psnr);
    if !fit.is_empty() {
        series.push((names.1, fit));
    }
    series
}

/// The two lines' names of a run named `name` on a chart of several.
fn run_names(name: &str) -> (String, String) {
    (name.to_string(), format!("{name}, training-pair fit"))
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
                title: "PSNR: validation, and the training-pair fit where scored",
                x_label: "training hours (wall clock)",
                y_label: "PSNR (dB)",
                series: psnr_series(
                    ("validation".into(), "training-pair fit".into()),
                    history,
                    0.0,
                ),
            },
        ],
        900,
        320,
    )
}

/// The training history recorded in a weights file's card (empty for a file without one).
pub fn history_of(weights: &Weights) -> Vec<EpochLog> {
    history_in(&weights.card)
}

/// One line of [`compare`]'s chart.
pub struct Run {
    pub name: String,
    /// The training hours of the runs behind this one's `--init`.
    pub start_hours: f64,
    pub history: Vec<EpochLog>,
}

impl Run {
    /// The run recorded in `weights`' card, placed after the runs of its lineage.
    pub fn of(name: String, weights: &Weights) -> Run {
        // A training checkpoint keeps its run under `training`; finished weights at the top.
        let card = weights
            .card
            .get("training")
            .filter(|t| t.get("history").is_some())
            .unwrap_or(&weights.card);
        let lineage = lineage_of(card);
        // The last stage is this run itself.
        let earlier = lineage.len().saturating_sub(1);
        Run {
            name,
            start_hours: lineage[..earlier].iter().map(|s| s.hours).sum(),
            history: history_in(card),
        }
    }
}

/// Validation PSNR against cumulative training hours of several runs, one line each (and one
/// for each run's training-pair fit, where recorded), into `path`.
pub fn compare(runs: &[Run], path: &Path) -> Result<(), PlotError> {
    charts_png(
        path,
        &[Chart {
            title: "PSNR against training time: validation, and the training-pair fit where scored",
            x_label: "cumulative training hours (wall clock, the runs behind --init included)",
            y_label: "PSNR (dB)",
            series: runs
                .iter()
                .flat_map(|r| psnr_series(run_names(&r.name), &r.history, r.start_hours))
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
                fit_psnr: None,
                seconds: 360.0,
            })
            .collect()
    }

    #[test]
    fn hours_accumulate_the_epochs_seconds() {
        let got = by_hours(&history(3, 10.0), 0.0, |e| e.val_psnr);
        let want = [(0.1, 11.0), (0.2, 12.0), (0.3, 13.0)];
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(want) {
            assert!((g.0 - w.0).abs() < 1e-12 && g.1 == w.1, "{got:?}");
        }
        let later = by_hours(&history(1, 10.0), 2.0, |e| e.val_psnr);
        assert!((later[0].0 - 2.1).abs() < 1e-12, "{later:?}");
    }

    #[test]
    fn the_training_pair_fit_is_drawn_beside_validation_where_recorded() {
        let plain = psnr_series(run_names("control"), &history(3, 10.0), 1.0);
        assert_eq!(plain.len(), 1, "no fit recorded, no fit line");
        let mut with_fit = history(3, 10.0);
        // The fit is scored on some epochs only (e.g. a run resumed with --fit-only).
        with_fit[1].fit_psnr = Some(19.5);
        with_fit[2].fit_psnr = Some(20.0);
        let series = psnr_series(run_names("control"), &with_fit, 1.0);
        assert_eq!(series.len(), 2);
        assert_eq!(series[1].0, "control, training-pair fit");
        let fit = &series[1].1;
        assert_eq!(fit.len(), 2);
        assert!(
            (fit[0].0 - 1.2).abs() < 1e-12 && fit[0].1 == 19.5,
            "{fit:?}"
        );
        assert!(
            (fit[1].0 - 1.3).abs() < 1e-12 && fit[1].1 == 20.0,
            "{fit:?}"
        );
    }

    #[test]
    fn a_run_from_an_init_starts_after_its_lineage() {
        let card = serde_json::json!({
            "arch": "hq",
            "command": "nircolor train --resume x",
            "history": history(2, 10.0),
            "lineage": [
                {"arch": "hq", "epochs": 4, "hours": 1.5, "commands": ["a"]},
                {"arch": "hq", "epochs": 2, "hours": 0.25, "commands": ["b", "c"]},
            ],
        });
        let stages = lineage_of(&card);
        assert_eq!(stages.len(), 3);
        assert_eq!(stages[2].commands, ["nircolor train --resume x"]);
        assert!((stages[2].hours - 0.2).abs() < 1e-12);
        let w = Weights::new("hq", card);
        let run = Run::of("r".into(), &w);
        assert!((run.start_hours - 1.75).abs() < 1e-12);
        assert_eq!(run.history.len(), 2);
    }

    #[test]
    fn a_training_checkpoint_is_read_as_its_run_so_far() {
        // `--resume` checkpoints keep the run under `training`, beside the net's settings.
        let card = serde_json::json!({
            "net": {"arch": "dct"},
            "training": {
                "history": history(3, 15.0),
                "lineage": [{"arch": "dct", "epochs": 47, "hours": 2.0, "commands": ["a"]}],
                "commands": ["nircolor train --init x"],
            },
        });
        let run = Run::of("ckpt".into(), &Weights::new("dct", card));
        assert_eq!(run.history.len(), 3);
        assert!((run.start_hours - 2.0).abs() < 1e-12);
    }

    #[test]
    fn one_run_and_several_runs_are_drawn() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.png");
        write(&history(5, 10.0), &one).unwrap();
        assert_eq!(image::open(&one).unwrap().height(), 640);
        let many = dir.path().join("many.png");
        let run = |name: &str, start_hours, history| Run {
            name: name.into(),
            start_hours,
            history,
        };
        compare(
            &[
                run("a", 0.0, history(5, 10.0)),
                run("b", 0.5, history(8, 9.0)),
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
