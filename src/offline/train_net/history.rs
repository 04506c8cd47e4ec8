//! A run's record in the model card: each epoch's loss and scores, and the runs behind a
//! network (its lineage), so a card tells the whole training it cost and how to redo it. Also
//! the run's plan: the epochs a `--minutes` budget holds, and what a resumed run may change.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// A step that takes more than this many times the epoch's median step counts as the median:
/// the process was stopped (SIGSTOP while benchmarks run) or suspended, and that is not
/// training time. Real steps vary by well under 2x on a loaded machine.
const PAUSED_STEP: f64 = 10.0;

/// An epoch's training time without the pauses: what `EpochLog::seconds`, and so the hours in a
/// model card, count.
#[derive(Debug)]
pub(super) struct TrainingClock {
    last: Instant,
    /// This epoch's step times as measured.
    steps: Vec<f64>,
    counted: f64,
}

impl TrainingClock {
    pub(super) fn start() -> TrainingClock {
        TrainingClock {
            last: Instant::now(),
            steps: Vec::new(),
            counted: 0.0,
        }
    }

    /// Counts the time since the last lap as one step (the median step if it was a pause).
    pub(super) fn step(&mut self) -> f64 {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let counted = if self.steps.len() >= 5 {
            let mut sorted = self.steps.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            if dt > PAUSED_STEP * median {
                median
            } else {
                dt
            }
        } else {
            dt
        };
        self.steps.push(dt);
        self.counted += counted;
        counted
    }

    /// The epoch's counted seconds, the time since the last step (validation) included as is;
    /// the clock starts the next epoch.
    pub(super) fn end_epoch(&mut self) -> f64 {
        let total = self.counted + self.last.elapsed().as_secs_f64();
        *self = TrainingClock::start();
        total
    }
}

/// One epoch's record, for the curve and the card.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub loss: f64,
    pub val_psnr: Option<f64>,
    /// The same PSNR on a fixed subset of the training pairs (`Trainer::set_fit_probe`): how
    /// well the network fits what it learns from, beside how it generalises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_psnr: Option<f64>,
    /// Training time, pauses of the process left out ([`TrainingClock`]).
    pub seconds: f64,
}

/// Wall-clock training hours of a run's epochs.
pub fn hours(history: &[EpochLog]) -> f64 {
    history.iter().map(|e| e.seconds).sum::<f64>() / 3600.0
}

/// A run that a network went through, as its model card records it. A run started with
/// `--init` keeps the stages behind its init, so a fine-tuned network's card tells the whole
/// training it cost and how to reproduce it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stage {
    pub arch: String,
    pub epochs: usize,
    /// Wall-clock training hours (its epochs' seconds).
    pub hours: f64,
    /// The command lines of the run: the first, then each `--resume`.
    pub commands: Vec<String>,
}

/// The training history recorded in a model card (empty for a card without one).
pub fn history_in(card: &serde_json::Value) -> Vec<EpochLog> {
    card.get("history")
        .and_then(|h| serde_json::from_value(h.clone()).ok())
        .unwrap_or_default()
}

/// The runs behind the weights whose card is `card`, oldest first, ending with the card's own
/// run. A classical model's card (fitted, no epochs) adds no stage of its own.
pub fn lineage_of(card: &serde_json::Value) -> Vec<Stage> {
    let mut stages: Vec<Stage> = card
        .get("lineage")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let history = history_in(card);
    if !history.is_empty() {
        // Cards written before `commands` existed hold only the last command line.
        let commands = match (card.get("commands"), card.get("command")) {
            (Some(c), _) => serde_json::from_value(c.clone()).unwrap_or_default(),
            (None, Some(serde_json::Value::String(c))) => vec![c.clone()],
            _ => Vec::new(),
        };
        stages.push(Stage {
            arch: card["arch"].as_str().unwrap_or("?").to_string(),
            epochs: history.len(),
            hours: hours(&history),
            commands,
        });
    }
    stages
}

/// With `--minutes`, the plan follows the first epochs' durations: the first carries the
/// device's warm-up (a GPU's kernel loading costs seconds, as long as several of its epochs).
pub(super) const MINUTES_PLAN_EPOCHS: usize = 3;

/// The epochs a `minutes` budget holds: the `done` epochs that took `spent` seconds, and as
/// many more as fit in the rest at the pace of the last one (`last` seconds).
pub(super) fn plan_epochs(minutes: f64, done: usize, spent: f64, last: f64) -> usize {
    let more = ((minutes * 60.0 - spent) / last.max(1e-3)).max(0.0);
    (done + more.floor() as usize).max(1)
}

impl super::Trainer {
    /// Changes the planned number of epochs (extending a resumed run); the learning-rate
    /// schedule stretches to the new length.
    pub fn set_epochs(&mut self, epochs: usize) {
        self.progress.planned = Some(epochs.max(1));
    }

    /// Turns `--keep-best` on for a resumed run that was started without it. The best epoch is
    /// looked for from the next one on: the weights of the epochs before are gone.
    pub fn keep_best_from_now(&mut self) {
        self.progress.options.keep_best = true;
    }

    /// Changes how often a resumed run writes its checkpoint (in epochs, at least 1); what the
    /// run computes stays the same.
    pub fn set_checkpoint_every(&mut self, every: usize) {
        self.progress.options.checkpoint_every = every.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_card_read_back_from_its_json_text_keeps_the_runs_hours_exactly() {
        // Epoch times that serde_json's default float parser reads back one bit off.
        let history: Vec<EpochLog> = [
            1.891_574_571_428_571_4,
            105.047_414_142_857_15,
            90.317_364_285_714_29,
        ]
        .iter()
        .enumerate()
        .map(|(i, &seconds)| EpochLog {
            epoch: i + 1,
            loss: 0.1,
            val_psnr: None,
            fit_psnr: None,
            seconds,
        })
        .collect();
        let own = hours(&history);
        let text = serde_json::json!({
            "arch": "fast",
            "history": history,
            "commands": ["nircolor train"],
            "training_hours": own,
        })
        .to_string();
        let card: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(history_in(&card), history);
        let stages = lineage_of(&card);
        assert_eq!(stages[0].hours, own);
        assert_eq!(card["training_hours"].as_f64(), Some(own));
    }

    #[test]
    fn a_pause_counts_as_a_median_step_not_as_training() {
        let mut clock = TrainingClock::start();
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(5));
            clock.step();
        }
        // A 20x step: the process was stopped.
        std::thread::sleep(Duration::from_millis(100));
        let counted = clock.step();
        assert!(counted < 0.02, "a pause counted {counted} s");
        let epoch = clock.end_epoch();
        assert!(
            (0.03..0.1).contains(&epoch),
            "{epoch} s for 7 steps of 5 ms"
        );
    }
}
