//! The inference stage: batches across cameras, closes batches on size or wait, routes each
//! frame back to its camera at full resolution, and outlives a camera that goes away.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nircolor::capture::{Frame, FrameMeta};
use nircolor::detail::GuidedFilter;
use nircolor::images::planes::{Gray, Rgb};
use nircolor::infer::{ColourFrame, InferSettings, InferStage, Refresh};
use nircolor::models::colorizer::{Colorizer, Identity};
use nircolor::runtime::queue::{newest_wins, Consumer, NewestWins};

/// Identity colour, recording the size of every batch it is given.
struct Recording(Arc<Mutex<Vec<usize>>>);

impl Colorizer for Recording {
    fn name(&self) -> String {
        "recording".into()
    }
    fn colorize(&self, nir: &Gray) -> Rgb {
        Identity.colorize(nir)
    }
    fn colorize_batch(&self, nirs: &[Gray]) -> Vec<Rgb> {
        self.0.lock().unwrap().push(nirs.len());
        nirs.iter().map(|n| self.colorize(n)).collect()
    }
}

fn frame(camera: &str, seq: u64) -> Frame {
    let (w, h) = (64, 48);
    let data = (0..w * h)
        .map(|i| 0.2 + 0.6 * ((i % w) as f32 / w as f32) + 0.1 * ((i / w) % 2) as f32)
        .collect();
    Frame {
        meta: FrameMeta {
            camera: camera.into(),
            seq,
            pts: None,
            captured_at: Instant::now(),
        },
        luma: Gray::new(w, h, data),
        colour: None,
    }
}

fn config(max_batch: usize, max_wait_ms: u64) -> InferSettings {
    InferSettings {
        scale: 0.5,
        max_pixels: 0,
        max_batch,
        max_wait: Duration::from_millis(max_wait_ms),
        detail: GuidedFilter {
            radius: 4,
            eps: 1e-4,
        },
        refresh: Refresh::EveryFrame,
        blend: nircolor::infer::BLEND,
    }
}

type Wiring = (
    Vec<NewestWins<Frame>>,
    Vec<Consumer<Frame>>,
    HashMap<Arc<str>, NewestWins<ColourFrame>>,
    Vec<Consumer<ColourFrame>>,
);

fn wire(cameras: &[&str]) -> Wiring {
    let (mut ins, mut in_rx, mut outs, mut out_rx) =
        (Vec::new(), Vec::new(), HashMap::new(), Vec::new());
    for &c in cameras {
        let (tx, rx) = newest_wins(16);
        ins.push(tx);
        in_rx.push(rx);
        let (tx, rx) = newest_wins(16);
        outs.insert(Arc::from(c), tx);
        out_rx.push(rx);
    }
    (ins, in_rx, outs, out_rx)
}

#[test]
fn frames_waiting_on_several_cameras_share_one_batch_and_come_back_full_size() {
    let cams = ["a", "b", "c"];
    let (ins, in_rx, outs, out_rx) = wire(&cams);
    for (i, tx) in ins.iter().enumerate() {
        tx.push(frame(cams[i], 7));
    }
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let stage = InferStage::spawn(
        Box::new(Recording(sizes.clone())),
        in_rx,
        outs,
        config(3, 500),
    )
    .unwrap();
    for (i, rx) in out_rx.iter().enumerate() {
        let out = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a colour frame");
        assert_eq!(
            (&*out.meta.camera, out.meta.seq, out.batch_size),
            (cams[i], 7, 3)
        );
        assert_eq!((out.rgb.width, out.rgb.height), (64, 48));
        // Identity colour at half size, restored by the guided filter: the NIR again.
        let nir = frame(cams[i], 7).luma;
        let err = out
            .rgb
            .plane(0)
            .iter()
            .zip(&nir.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.05, "max error {err}");
    }
    assert_eq!(*sizes.lock().unwrap(), vec![3]);
    assert_eq!(stage.stats().frames.load(Ordering::SeqCst), 3);
    stage.stop();
}

#[test]
fn a_lonely_frame_waits_at_most_max_wait() {
    let (ins, in_rx, outs, out_rx) = wire(&["a", "b"]);
    let stage = InferStage::spawn(Box::new(Identity), in_rx, outs, config(4, 100)).unwrap();
    let sent = Instant::now();
    ins[1].push(frame("b", 1));
    let out = out_rx[1]
        .recv_timeout(Duration::from_secs(5))
        .expect("a colour frame");
    let waited = sent.elapsed();
    assert_eq!(out.batch_size, 1);
    assert!(
        waited >= Duration::from_millis(90),
        "the batch stays open for max_wait ({waited:?})"
    );
    assert!(waited < Duration::from_secs(2), "then closes ({waited:?})");
    stage.stop();
}

#[test]
fn batches_never_exceed_max_batch() {
    let (ins, in_rx, outs, out_rx) = wire(&["a"]);
    for seq in 0..10 {
        ins[0].push(frame("a", seq));
    }
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let stage = InferStage::spawn(
        Box::new(Recording(sizes.clone())),
        in_rx,
        outs,
        config(4, 50),
    )
    .unwrap();
    let seqs: Vec<u64> = (0..10)
        .map(|_| {
            out_rx[0]
                .recv_timeout(Duration::from_secs(5))
                .unwrap()
                .meta
                .seq
        })
        .collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "in order, none lost");
    let sizes = sizes.lock().unwrap().clone();
    assert!(
        sizes.iter().all(|&s| s <= 4) && sizes.iter().sum::<usize>() == 10,
        "{sizes:?}"
    );
    stage.stop();
}

#[test]
fn a_camera_that_goes_away_does_not_stop_the_others_and_strays_are_counted() {
    let (mut ins, in_rx, outs, out_rx) = wire(&["a", "b"]);
    let stage = InferStage::spawn(Box::new(Identity), in_rx, outs, config(2, 20)).unwrap();
    drop(ins.remove(0)); // camera a's capture ends
    ins[0].push(frame("b", 3));
    assert_eq!(
        out_rx[1]
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .meta
            .seq,
        3
    );
    ins[0].push(frame("nobody", 4)); // a frame no output is wired for
    let deadline = Instant::now() + Duration::from_secs(5);
    while stage.stats().unrouted.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stage.stats().unrouted.load(Ordering::SeqCst), 1);
    let started = Instant::now();
    stage.stop();
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Identity colour, recording the mean level of every frame of every batch.
struct Levels(Arc<Mutex<Vec<Vec<f32>>>>);

impl Colorizer for Levels {
    fn name(&self) -> String {
        "levels".into()
    }
    fn colorize(&self, nir: &Gray) -> Rgb {
        Identity.colorize(nir)
    }
    fn colorize_batch(&self, nirs: &[Gray]) -> Vec<Rgb> {
        let means = nirs
            .iter()
            .map(|n| n.data.iter().sum::<f32>() / n.data.len() as f32)
            .collect();
        self.0.lock().unwrap().push(means);
        nirs.iter().map(|n| self.colorize(n)).collect()
    }
}

#[test]
fn more_cameras_than_batch_slots_are_served_in_turn() {
    // Four cameras with frames waiting, batches of two: the first two batches serve all four
    // (a fixed order would serve camera a in every batch).
    let names = ["a", "b", "c", "d"];
    let (ins, in_rx, outs, _out_rx) = wire(&names);
    for (i, (tx, name)) in ins.iter().zip(names).enumerate() {
        for seq in 0..6 {
            let mut f = frame(name, seq);
            f.luma
                .data
                .iter_mut()
                .for_each(|v| *v = 0.1 * (i + 1) as f32);
            tx.push(f);
        }
    }
    let batches = Arc::new(Mutex::new(Vec::new()));
    let stage =
        InferStage::spawn(Box::new(Levels(batches.clone())), in_rx, outs, config(2, 0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while batches.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    stage.stop();
    let batches = batches.lock().unwrap();
    let mut served = [false; 4];
    for level in batches.iter().take(2).flatten() {
        served[((level / 0.1).round() as usize).clamp(1, 4) - 1] = true;
    }
    assert_eq!(
        served,
        [true; 4],
        "first batches: {:?}",
        &batches[..2.min(batches.len())]
    );
}
