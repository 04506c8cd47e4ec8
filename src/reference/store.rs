//! A camera's day reference on disk, and how the daemon makes it by day: colour frames sampled
//! every few seconds, their per-pixel median (people and cars passing through are in few of
//! the samples, so they do not stay), written atomically as a PNG with its metadata beside it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::images::planes::Rgb;

/// How a camera keeps its reference (`reference = { ... }` in its `[[camera]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceSettings {
    /// The reference image (PNG); its metadata goes beside it as `.json`.
    pub file: PathBuf,
    /// By day, a colour frame is sampled this often.
    pub sample_every: Duration,
    /// The median is taken, and the reference written, once this many samples are in.
    pub min_frames: usize,
    /// At most this many samples are kept (the oldest leave): the window the median covers.
    pub max_frames: usize,
}

/// Fewer than 3 samples have no median that can outvote a passer-by.
pub const MIN_FRAMES: usize = 3;

/// 31 samples of a 1920x1080 frame are 190 MB of memory; more buys no robustness.
pub const MAX_FRAMES: usize = 31;

impl Default for ReferenceSettings {
    /// 15 samples 20 s apart: the median of five minutes of daylight.
    fn default() -> Self {
        ReferenceSettings {
            file: PathBuf::from("reference.png"),
            sample_every: Duration::from_secs(20),
            min_frames: 15,
            max_frames: 15,
        }
    }
}

impl ReferenceSettings {
    /// What is wrong with these settings, if anything.
    pub fn validate(&self) -> Result<(), String> {
        if self.sample_every.is_zero() {
            return Err("sample_seconds must be above 0".into());
        }
        if !(MIN_FRAMES..=MAX_FRAMES).contains(&self.min_frames) {
            return Err(format!(
                "frames {} is outside {MIN_FRAMES}..={MAX_FRAMES} (fewer cannot outvote a passer-by; more only cost memory)",
                self.min_frames
            ));
        }
        if self.file.extension().is_none_or(|e| e != "png") {
            return Err(format!(
                "file {} must be a .png (lossless: the reference is the scene's colour)",
                self.file.display()
            ));
        }
        Ok(())
    }
}

/// What a stored reference records beside its image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceMeta {
    /// When it was made, seconds since the Unix epoch.
    pub made_unix: u64,
    /// How many colour frames its median took.
    pub frames: usize,
    /// Seconds between the first and the last of them.
    pub span_seconds: f64,
    /// How still the scene was: the mean over pixels of the samples' median absolute deviation
    /// from the median, in 8-bit levels (0: nothing moved).
    pub stillness: f32,
    pub width: usize,
    pub height: usize,
    /// Set by `nircolor calibrate reference`: the photo it was made from and how it was placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
}

/// A reference and its metadata.
#[derive(Clone, Debug)]
pub struct StoredReference {
    pub image: Rgb,
    pub meta: ReferenceMeta,
}

/// Why a stored reference could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reference {file}: {why}; it is ignored and a new one is built by day")]
    Unreadable { file: String, why: String },
    #[error("cannot write reference {file}: {why}; the previous reference is kept")]
    Write { file: String, why: String },
}

/// The metadata file beside a reference image.
pub fn meta_path(file: &Path) -> PathBuf {
    file.with_extension("json")
}

/// Reads a stored reference: `Ok(None)` when there is none yet.
pub fn load(file: &Path) -> Result<Option<StoredReference>, StoreError> {
    if !file.exists() {
        return Ok(None);
    }
    let bad = |why: String| StoreError::Unreadable {
        file: file.display().to_string(),
        why,
    };
    let img = image::open(file).map_err(|e| bad(e.to_string()))?.to_rgb8();
    let meta_file = meta_path(file);
    let text = std::fs::read_to_string(&meta_file)
        .map_err(|e| bad(format!("its metadata {}: {e}", meta_file.display())))?;
    let meta: ReferenceMeta = serde_json::from_str(&text)
        .map_err(|e| bad(format!("its metadata {}: {e}", meta_file.display())))?;
    if (meta.width, meta.height) != (img.width() as usize, img.height() as usize) {
        return Err(bad(format!(
            "the image is {}x{} but its metadata says {}x{}",
            img.width(),
            img.height(),
            meta.width,
            meta.height
        )));
    }
    Ok(Some(StoredReference {
        image: Rgb::from_rgb8(&img),
        meta,
    }))
}

/// Writes `reference` atomically: image and metadata go to temporary files first and are
/// renamed over the old ones only when both are complete, so a full disk or a crash leaves
/// the previous reference whole.
pub fn save(file: &Path, reference: &StoredReference) -> Result<(), StoreError> {
    let fail = |why: String| StoreError::Write {
        file: file.display().to_string(),
        why,
    };
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let tmp_image = file.with_extension("png.tmp");
    let tmp_meta = file.with_extension("json.tmp");
    let result = (|| {
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(reference.image.to_rgb8())
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| e.to_string())?;
        write_synced(&tmp_image, &png)?;
        let meta = serde_json::to_string_pretty(&reference.meta).expect("metadata serialises");
        write_synced(&tmp_meta, meta.as_bytes())?;
        std::fs::rename(&tmp_image, file).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp_meta, meta_path(file)).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_image);
        let _ = std::fs::remove_file(&tmp_meta);
    }
    result.map_err(fail)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Samples a camera's colour frames by day and makes its reference from them.
#[derive(Debug)]
pub struct Builder {
    settings: ReferenceSettings,
    /// Packed 8-bit RGB samples of one size, oldest first, with their times.
    samples: VecDeque<(Instant, Vec<u8>)>,
    size: (usize, usize),
    last_sample: Option<Instant>,
}

impl Builder {
    pub fn new(settings: ReferenceSettings) -> Builder {
        Builder {
            settings,
            samples: VecDeque::new(),
            size: (0, 0),
            last_sample: None,
        }
    }

    /// Offers a day frame captured at `at`: sampled when its time has come; returns a new
    /// reference when the samples make one (at most once per sample).
    pub fn offer(&mut self, frame: &Rgb, at: Instant) -> Option<StoredReference> {
        if self
            .last_sample
            .is_some_and(|t| at.saturating_duration_since(t) < self.settings.sample_every)
        {
            return None;
        }
        let size = (frame.width, frame.height);
        if size != self.size {
            // The camera renegotiated: the old samples are of another picture.
            self.samples.clear();
            self.size = size;
        }
        self.last_sample = Some(at);
        self.samples.push_back((at, frame.to_rgb8().into_raw()));
        while self.samples.len() > self.settings.max_frames.max(self.settings.min_frames) {
            self.samples.pop_front();
        }
        (self.samples.len() >= self.settings.min_frames).then(|| self.median())
    }

    /// The per-pixel median of the samples, and how still they were.
    fn median(&self) -> StoredReference {
        let (w, h) = self.size;
        let n = self.samples.len();
        let mut values = vec![0u8; n];
        let mut out = vec![0u8; 3 * w * h];
        let mut deviation = 0f64;
        for (i, o) in out.iter_mut().enumerate() {
            for (v, (_, s)) in values.iter_mut().zip(&self.samples) {
                *v = s[i];
            }
            values.sort_unstable();
            let m = values[n / 2];
            *o = m;
            let mut dev: Vec<u8> = values.iter().map(|&v| v.abs_diff(m)).collect();
            dev.sort_unstable();
            deviation += f64::from(dev[n / 2]);
        }
        let first = self.samples.front().map(|s| s.0);
        let last = self.samples.back().map(|s| s.0);
        let span = match (first, last) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let img = image::RgbImage::from_raw(w as u32, h as u32, out).expect("sized for w x h");
        StoredReference {
            image: Rgb::from_rgb8(&img),
            meta: ReferenceMeta {
                made_unix: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                frames: n,
                span_seconds: span,
                stillness: (deviation / (3 * w * h).max(1) as f64) as f32,
                width: w,
                height: h,
                photo: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Rgb {
        let img = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb(f(x as usize, y as usize))
        });
        Rgb::from_rgb8(&img)
    }

    fn settings(dir: &Path) -> ReferenceSettings {
        ReferenceSettings {
            file: dir.join("cam.png"),
            sample_every: Duration::from_secs(1),
            min_frames: 5,
            max_frames: 5,
        }
    }

    #[test]
    fn the_median_keeps_the_scene_and_drops_what_passed_through() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Builder::new(settings(dir.path()));
        let scene = |_: usize, y: usize| if y < 8 { [90, 140, 220] } else { [60, 120, 40] };
        let t0 = Instant::now();
        let mut made = None;
        for k in 0..5u64 {
            // A red car crossing: in one sample at each place.
            let car = k as usize * 6;
            let f = frame(32, 16, |x, y| {
                if (car..car + 6).contains(&x) && y >= 8 {
                    [200, 20, 20]
                } else {
                    scene(x, y)
                }
            });
            made = b.offer(&f, t0 + Duration::from_secs(k));
            // Frames between samples are not taken.
            let between = t0 + Duration::from_millis(1000 * k + 500);
            assert!(b.offer(&f, between).is_none());
        }
        let r = made.expect("five samples make a reference");
        assert_eq!(r.image.to_rgb8(), frame(32, 16, scene).to_rgb8());
        assert_eq!((r.meta.frames, r.meta.width, r.meta.height), (5, 32, 16));
        assert!(r.meta.stillness < 1.0 && (r.meta.span_seconds - 4.0).abs() < 0.6);
    }

    #[test]
    fn save_and_load_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        assert!(load(&s.file).unwrap().is_none());
        let r = StoredReference {
            image: frame(8, 6, |x, y| [x as u8 * 20, y as u8 * 30, 77]),
            meta: ReferenceMeta {
                made_unix: 1,
                frames: 5,
                span_seconds: 4.0,
                stillness: 0.5,
                width: 8,
                height: 6,
                photo: None,
            },
        };
        save(&s.file, &r).unwrap();
        let back = load(&s.file).unwrap().unwrap();
        assert_eq!(back.image.to_rgb8(), r.image.to_rgb8());
        assert_eq!(back.meta, r.meta);
        // A truncated image is refused with its name, and so is metadata of another size.
        std::fs::write(&s.file, b"\x89PNG\r\n\x1a\n").unwrap();
        let err = load(&s.file).err().unwrap().to_string();
        assert!(
            err.contains("cam.png") && err.contains("built by day"),
            "{err}"
        );
        save(&s.file, &r).unwrap();
        let mut meta = r.meta.clone();
        meta.width = 9;
        std::fs::write(meta_path(&s.file), serde_json::to_string(&meta).unwrap()).unwrap();
        let err = load(&s.file).err().unwrap().to_string();
        assert!(err.contains("8x6") && err.contains("9x6"), "{err}");
    }

    #[test]
    fn a_failed_write_keeps_the_previous_reference() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let r = StoredReference {
            image: frame(4, 4, |_, _| [10, 20, 30]),
            meta: ReferenceMeta {
                made_unix: 1,
                frames: 5,
                span_seconds: 1.0,
                stillness: 0.0,
                width: 4,
                height: 4,
                photo: None,
            },
        };
        save(&s.file, &r).unwrap();
        // The temporary file's place is taken by a folder: the write fails as a full disk
        // would, after the old files were there.
        std::fs::create_dir_all(s.file.with_extension("png.tmp")).unwrap();
        let mut newer = r.clone();
        newer.meta.made_unix = 2;
        let err = save(&s.file, &newer).err().unwrap().to_string();
        assert!(err.contains("previous reference is kept"), "{err}");
        assert_eq!(load(&s.file).unwrap().unwrap().meta.made_unix, 1);
    }
}
