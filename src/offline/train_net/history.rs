//! A run's record in the model card: each epoch's loss and scores, and the runs behind a
//! network (its lineage), so a card tells the whole training it cost and how to redo it.

use serde::{Deserialize, Serialize};

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
