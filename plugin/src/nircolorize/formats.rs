//! The element's output formats, from nircolor's f32 planes. Inputs are read by
//! `nircolor::capture::frame`, the daemon's own reader.

use gstreamer::BufferRef;
use gstreamer_video::{VideoFormat, VideoFrameExt, VideoFrameRef};

use nircolor::images::planes::{byte, unit, Rgb};
use nircolor::Ycc;

/// What the sink pad takes: the formats the daemon's reader takes.
pub const SINK_FORMATS: [VideoFormat; 7] = nircolor::capture::frame::FORMATS;

/// What the source pad gives: packed RGB for converters and files, I420 and NV12 for encoders
/// (x264enc, hardware encoders) without a `videoconvert`.
pub const SRC_FORMATS: [VideoFormat; 5] = [
    VideoFormat::Rgb,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// Writes `rgb` (planes in [0, 1]) into a mapped output frame of its size.
pub fn write(rgb: &Rgb, frame: &mut VideoFrameRef<&mut BufferRef>) -> Result<(), String> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if (rgb.width, rgb.height) != (w, h) {
        return Err(format!(
            "colour of {}x{} for an output frame of {w}x{h}",
            rgb.width, rgb.height
        ));
    }
    let n = w * h;
    let strides: Vec<usize> = frame.plane_stride().iter().map(|&s| s as usize).collect();
    let format = frame.format();
    let ycc = Ycc::of(frame.info());
    let px = |i: usize| [rgb.data[i], rgb.data[n + i], rgb.data[2 * n + i]].map(unit);
    match format {
        VideoFormat::Rgb | VideoFormat::Rgbx | VideoFormat::Bgrx => {
            let (step, order) = match format {
                VideoFormat::Rgb => (3, [0, 1, 2]),
                VideoFormat::Rgbx => (4, [0, 1, 2]),
                _ => (4, [2, 1, 0]),
            };
            let p = frame
                .plane_data_mut(0)
                .map_err(|e| format!("output plane: {e}"))?;
            for y in 0..h {
                let row = &mut p[y * strides[0]..][..step * w];
                for (x, out) in row.chunks_exact_mut(step).enumerate() {
                    let i = y * w + x;
                    for c in 0..3 {
                        out[order[c]] = byte(255.0 * rgb.data[c * n + i]);
                    }
                    if step == 4 {
                        out[3] = 255;
                    }
                }
            }
            Ok(())
        }
        VideoFormat::I420 | VideoFormat::Nv12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut cb = vec![0.0f32; cw * ch];
            let mut cr = vec![0.0f32; cw * ch];
            let mut count = vec![0.0f32; cw * ch];
            {
                let yp = frame
                    .plane_data_mut(0)
                    .map_err(|e| format!("output plane 0: {e}"))?;
                for y in 0..h {
                    for x in 0..w {
                        let (yy, b, r) = ycc.ycc(px(y * w + x));
                        yp[y * strides[0] + x] = ycc.y_byte(yy);
                        let c = (y / 2) * cw + x / 2;
                        cb[c] += b;
                        cr[c] += r;
                        count[c] += 1.0;
                    }
                }
            }
            // Each chroma sample is the mean of the 2x2 block it covers (fewer at odd edges).
            let at = |c: usize| (ycc.c_byte(cb[c] / count[c]), ycc.c_byte(cr[c] / count[c]));
            if format == VideoFormat::I420 {
                for (plane, pick_cr) in [(1u32, false), (2u32, true)] {
                    let p = frame
                        .plane_data_mut(plane)
                        .map_err(|e| format!("output plane {plane}: {e}"))?;
                    for y in 0..ch {
                        for x in 0..cw {
                            let (b, r) = at(y * cw + x);
                            p[y * strides[plane as usize] + x] = if pick_cr { r } else { b };
                        }
                    }
                }
            } else {
                let p = frame
                    .plane_data_mut(1)
                    .map_err(|e| format!("output plane 1: {e}"))?;
                for y in 0..ch {
                    for x in 0..cw {
                        let (b, r) = at(y * cw + x);
                        p[y * strides[1] + 2 * x] = b;
                        p[y * strides[1] + 2 * x + 1] = r;
                    }
                }
            }
            Ok(())
        }
        other => Err(format!(
            "output format {other:?} is not one nircolorize gives"
        )),
    }
}
