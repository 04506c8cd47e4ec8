//! Snapshots of a camera's latest frame, NIR and colour, for the status endpoints. The frame
//! path copies a frame only when someone has asked for one (one atomic load per frame
//! otherwise), and the asker encodes it, so a viewer never slows the pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::images::planes::{Gray, Rgb};

/// One camera's snapshot slot.
#[derive(Debug, Default)]
pub struct Snapshot {
    wanted: AtomicBool,
    /// The frame copied for the latest request, with when it was taken.
    latest: Mutex<Option<(Instant, Gray, Rgb)>>,
    taken: Condvar,
}

/// Which picture of a camera.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum View {
    /// The NIR as the model saw it (after the camera's NIR calibration).
    Nir,
    /// The colour output, as encoded.
    Colour,
}

impl Snapshot {
    /// Called by the frame path with each frame: copies it only when a request waits.
    pub fn offer(&self, nir: &Gray, colour: &Rgb) {
        if !self.wanted.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(mut latest) = self.latest.lock() {
            *latest = Some((Instant::now(), nir.clone(), colour.clone()));
            self.wanted.store(false, Ordering::Relaxed);
            self.taken.notify_all();
        }
    }

    /// A frame taken after this call, waiting up to `timeout`; `None` when the camera produced
    /// none in that time.
    pub fn take(&self, timeout: Duration) -> Option<(Gray, Rgb)> {
        let asked = Instant::now();
        let latest = self.latest.lock().ok()?;
        self.wanted.store(true, Ordering::Relaxed);
        let (latest, _) = self
            .taken
            .wait_timeout_while(
                latest,
                timeout,
                |l| !matches!(l, Some((at, _, _)) if *at >= asked),
            )
            .ok()?;
        match &*latest {
            Some((at, nir, colour)) if *at >= asked => Some((nir.clone(), colour.clone())),
            _ => None,
        }
    }
}

/// `view` of a frame as a JPEG of the frame's size.
pub fn jpeg(nir: &Gray, colour: &Rgb, view: View) -> Result<Vec<u8>, image::ImageError> {
    /// Good enough to judge colour on a status page, a tenth of the PNG's size.
    const QUALITY: u8 = 85;
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY);
    match view {
        View::Nir => encoder.encode_image(&nir.to_luma8())?,
        View::Colour => encoder.encode_image(&colour.to_rgb8())?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_frame_is_copied_only_when_asked_and_the_asker_gets_a_fresh_one() {
        let slot = Arc::new(Snapshot::default());
        let nir = Gray::new(4, 2, vec![0.5; 8]);
        let colour = Rgb::new(4, 2, vec![0.25; 24]);
        slot.offer(&nir, &colour);
        assert!(slot.latest.lock().unwrap().is_none(), "copied unasked");
        // No frame comes: the request times out.
        assert!(slot.take(Duration::from_millis(50)).is_none());
        let feeder = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    slot.offer(&nir, &colour);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let (n, c) = slot.take(Duration::from_secs(5)).expect("a frame");
        assert_eq!((n.width, c.height), (4, 2));
        feeder.join().unwrap();
    }

    #[test]
    fn the_jpeg_views_decode_to_the_frame_size_and_kind() {
        let nir = Gray::new(64, 48, vec![0.5; 64 * 48]);
        let mut data = vec![0.9; 64 * 48];
        data.extend(vec![0.1; 2 * 64 * 48]);
        let colour = Rgb::new(64, 48, data);
        let gray = image::load_from_memory(&jpeg(&nir, &colour, View::Nir).unwrap()).unwrap();
        assert_eq!((gray.width(), gray.height()), (64, 48));
        assert_eq!(gray.color(), image::ColorType::L8);
        let red = image::load_from_memory(&jpeg(&nir, &colour, View::Colour).unwrap())
            .unwrap()
            .to_rgb8();
        let p = red.get_pixel(32, 24).0;
        assert!(p[0] > 200 && p[1] < 50 && p[2] < 50, "{p:?}");
    }
}
