//! Day or night, per frame, from the frame's own chroma: a day/night camera delivers colour by
//! day (IR-cut filter closed) and NIR at night, often in the same YUV or RGB format, so the caps
//! cannot tell. Hysteresis and a minimum hold keep dusk, headlights or a television in the room
//! from making the mode flicker.

use std::time::{Duration, Instant};

use crate::images::planes::Rgb;

/// The mean chroma (max - min channel, 0-255) at or above which a frame looks like colour.
/// NIR frames through YUV or RGB keep a chroma of 0-2 (compression noise); daylight scenes
/// measure 10-27 (the truth's colourfulness over the EPFL pairs), dusk 5-8.
pub const DAY_CHROMA: f32 = 6.0;

/// The mean chroma at or below which a frame looks like NIR. Between the two the mode holds.
pub const NIGHT_CHROMA: f32 = 3.0;

/// A frame must look like the other mode for this long before the mode changes: a car's
/// headlights or a flash sweeping through a NIR scene last less.
pub const SWITCH_AFTER: Duration = Duration::from_millis(1000);

/// After a change the mode holds at least this long: the IR-cut filter clicking back and forth
/// at dusk would otherwise toggle it every few seconds.
pub const MIN_HOLD: Duration = Duration::from_secs(3);

/// Every `CHROMA_STEP`-th pixel in x and y is enough to measure the chroma of a frame.
const CHROMA_STEP: usize = 4;

/// The mean over a sparse grid of a frame's chroma (max - min channel), in 0-255.
pub fn chroma(frame: &Rgb) -> f32 {
    let (w, h) = (frame.width, frame.height);
    let n = w * h;
    let (mut sum, mut count) = (0f64, 0usize);
    for y in (0..h).step_by(CHROMA_STEP) {
        for x in (0..w).step_by(CHROMA_STEP) {
            let i = y * w + x;
            let (r, g, b) = (frame.data[i], frame.data[n + i], frame.data[2 * n + i]);
            sum += f64::from(r.max(g).max(b) - r.min(g).min(b));
            count += 1;
        }
    }
    (255.0 * sum / count.max(1) as f64) as f32
}

/// A camera's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Colour frames, passed through.
    Day,
    /// NIR frames, colorized.
    Night,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Day => "day",
            Mode::Night => "night",
        }
    }
}

/// One camera's mode over time. It starts at night (colorizing is the safe side: a colour
/// frame colorized is still a picture, a NIR frame passed through is gray).
#[derive(Debug)]
pub struct DayNight {
    mode: Mode,
    /// Since when the frames have looked like the other mode.
    other_since: Option<Instant>,
    switched_at: Option<Instant>,
    transitions: u64,
}

impl Default for DayNight {
    fn default() -> Self {
        DayNight {
            mode: Mode::Night,
            other_since: None,
            switched_at: None,
            transitions: 0,
        }
    }
}

impl DayNight {
    /// The mode for a frame of mean chroma `chroma` (see [`chroma`]) captured at `at`.
    pub fn observe(&mut self, chroma: f32, at: Instant) -> Mode {
        let looks = if chroma >= DAY_CHROMA {
            Some(Mode::Day)
        } else if chroma <= NIGHT_CHROMA {
            Some(Mode::Night)
        } else {
            None
        };
        match looks {
            Some(m) if m != self.mode => {
                let since = *self.other_since.get_or_insert(at);
                let held = self
                    .switched_at
                    .is_none_or(|t| at.saturating_duration_since(t) >= MIN_HOLD);
                if held && at.saturating_duration_since(since) >= SWITCH_AFTER {
                    self.mode = m;
                    self.switched_at = Some(at);
                    self.other_since = None;
                    self.transitions += 1;
                }
            }
            // The same mode, or in between: a change in progress starts over.
            _ => self.other_since = None,
        }
        self.mode
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// How many times the mode changed.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(w: usize, h: usize, rgb: [f32; 3]) -> Rgb {
        Rgb::new(w, h, rgb.iter().flat_map(|&v| vec![v; w * h]).collect())
    }

    #[test]
    fn chroma_is_zero_for_gray_and_the_channel_spread_for_colour() {
        assert_eq!(chroma(&flat(16, 8, [0.4, 0.4, 0.4])), 0.0);
        let c = chroma(&flat(16, 8, [0.5, 0.3, 0.2]));
        assert!((c - 0.3 * 255.0).abs() < 0.01, "{c}");
    }

    #[test]
    fn the_mode_changes_only_after_a_steady_second_and_holds() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = DayNight::default();
        assert_eq!(d.observe(20.0, at(0)), Mode::Night);
        assert_eq!(d.observe(20.0, at(900)), Mode::Night);
        assert_eq!(d.observe(20.0, at(1000)), Mode::Day);
        assert_eq!(d.transitions(), 1);
        // Headlights of the other kind: a short NIR-looking spell does nothing...
        assert_eq!(d.observe(0.5, at(1500)), Mode::Day);
        assert_eq!(d.observe(20.0, at(1600)), Mode::Day);
        // ... nor does a long one within the minimum hold after the change.
        assert_eq!(d.observe(0.5, at(2000)), Mode::Day);
        assert_eq!(d.observe(0.5, at(3900)), Mode::Day);
        // After the hold it goes.
        assert_eq!(d.observe(0.5, at(4100)), Mode::Night);
        assert_eq!(d.transitions(), 2);
    }

    #[test]
    fn between_the_thresholds_the_mode_holds_and_a_change_starts_over() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut d = DayNight::default();
        d.observe(20.0, at(0));
        d.observe(4.5, at(600)); // dusk: neither
        assert_eq!(d.observe(20.0, at(1200)), Mode::Night);
        assert_eq!(d.observe(20.0, at(2200)), Mode::Day);
        for k in 0..20 {
            assert_eq!(d.observe(4.5, at(3000 + k * 500)), Mode::Day);
        }
    }
}
