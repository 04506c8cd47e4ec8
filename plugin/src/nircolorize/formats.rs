//! The element's pixel formats to and from nircolor's f32 planes.

use gstreamer::BufferRef;
use gstreamer_video as gst_video;
use gstreamer_video::{VideoColorRange, VideoFormat, VideoFrameExt, VideoFrameRef};

use nircolor::images::planes::{byte, unit, Gray, Rgb};

/// What the sink pad takes: NIR as gray, and colour formats (day frames; NIR sent as YUV or RGB
/// with flat chroma).
pub const SINK_FORMATS: [VideoFormat; 7] = [
    VideoFormat::Gray8,
    VideoFormat::Gray16Le,
    VideoFormat::Rgb,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// What the source pad gives: packed RGB for converters and files, I420 and NV12 for encoders
/// (x264enc, hardware encoders) without a `videoconvert`.
pub const SRC_FORMATS: [VideoFormat; 5] = [
    VideoFormat::Rgb,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// A frame as the colorizer sees it: its luminance, and its colour when the format has one.
pub struct Input {
    pub luma: Gray,
    pub colour: Option<Rgb>,
}

/// Y'CbCr constants of a frame's colorimetry: the luma weights and the range.
#[derive(Clone, Copy)]
struct Ycc {
    kr: f32,
    kb: f32,
    /// Limited ("TV") range: Y in 16..235, Cb and Cr in 16..240.
    limited: bool,
}

impl Ycc {
    fn of(info: &gst_video::VideoInfo) -> Ycc {
        let c = info.colorimetry();
        // BT.601 when the caps leave it open, as videoconvert assumes for standard definition.
        let (kr, kb) = c.matrix().kr_kb().unwrap_or((0.299, 0.114));
        Ycc {
            kr: kr as f32,
            kb: kb as f32,
            limited: c.range() != VideoColorRange::Range0_255,
        }
    }

    fn luma(&self, y: u8) -> f32 {
        if self.limited {
            (f32::from(y) - 16.0) / 219.0
        } else {
            f32::from(y) / 255.0
        }
    }

    fn chroma(&self, c: u8) -> f32 {
        if self.limited {
            (f32::from(c) - 128.0) / 224.0
        } else {
            (f32::from(c) - 128.0) / 255.0
        }
    }

    fn rgb(&self, y: f32, cb: f32, cr: f32) -> [f32; 3] {
        let kg = 1.0 - self.kr - self.kb;
        let r = y + 2.0 * (1.0 - self.kr) * cr;
        let b = y + 2.0 * (1.0 - self.kb) * cb;
        let g = (y - self.kr * r - self.kb * b) / kg;
        [r, g, b]
    }

    /// Y, Cb, Cr bytes of an RGB pixel in [0, 1].
    fn y(&self, rgb: [f32; 3]) -> (f32, f32, f32) {
        let y = self.kr * rgb[0] + (1.0 - self.kr - self.kb) * rgb[1] + self.kb * rgb[2];
        let cb = (rgb[2] - y) / (2.0 * (1.0 - self.kb));
        let cr = (rgb[0] - y) / (2.0 * (1.0 - self.kr));
        (y, cb, cr)
    }

    fn y_byte(&self, y: f32) -> u8 {
        if self.limited {
            byte(16.0 + 219.0 * y)
        } else {
            byte(255.0 * y)
        }
    }

    fn c_byte(&self, c: f32) -> u8 {
        byte(128.0 + if self.limited { 224.0 } else { 255.0 } * c)
    }
}

/// Reads a mapped input frame.
pub fn read(frame: &VideoFrameRef<&BufferRef>) -> Result<Input, String> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let plane = |i: u32| {
        frame
            .plane_data(i)
            .map_err(|e| format!("input plane {i}: {e}"))
    };
    let stride = |i: usize| frame.plane_stride()[i] as usize;
    let n = w * h;
    match frame.format() {
        VideoFormat::Gray8 => {
            let p = plane(0)?;
            let mut luma = Vec::with_capacity(n);
            for y in 0..h {
                luma.extend(
                    p[y * stride(0)..][..w]
                        .iter()
                        .map(|&v| f32::from(v) / 255.0),
                );
            }
            Ok(Input {
                luma: Gray::new(w, h, luma),
                colour: None,
            })
        }
        VideoFormat::Gray16Le => {
            let p = plane(0)?;
            let mut luma = Vec::with_capacity(n);
            for y in 0..h {
                let row = &p[y * stride(0)..][..2 * w];
                luma.extend(
                    row.chunks_exact(2)
                        .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) / 65535.0),
                );
            }
            Ok(Input {
                luma: Gray::new(w, h, luma),
                colour: None,
            })
        }
        f @ (VideoFormat::Rgb | VideoFormat::Rgbx | VideoFormat::Bgrx) => {
            let (step, order) = match f {
                VideoFormat::Rgb => (3, [0, 1, 2]),
                VideoFormat::Rgbx => (4, [0, 1, 2]),
                _ => (4, [2, 1, 0]),
            };
            let p = plane(0)?;
            let mut rgb = vec![0.0f32; 3 * n];
            for y in 0..h {
                let row = &p[y * stride(0)..][..step * w];
                for (x, px) in row.chunks_exact(step).enumerate() {
                    for c in 0..3 {
                        rgb[c * n + y * w + x] = f32::from(px[order[c]]) / 255.0;
                    }
                }
            }
            let colour = Rgb::new(w, h, rgb);
            Ok(Input {
                luma: luma_of(&colour),
                colour: Some(colour),
            })
        }
        f @ (VideoFormat::I420 | VideoFormat::Nv12) => {
            let ycc = Ycc::of(frame.info());
            let yp = plane(0)?;
            let mut luma = Vec::with_capacity(n);
            for y in 0..h {
                luma.extend(yp[y * stride(0)..][..w].iter().map(|&v| ycc.luma(v)));
            }
            let mut rgb = vec![0.0f32; 3 * n];
            let (up, vp) = if f == VideoFormat::I420 {
                (plane(1)?, Some(plane(2)?))
            } else {
                (plane(1)?, None)
            };
            for y in 0..h {
                for x in 0..w {
                    let (cb, cr) = match vp {
                        Some(vp) => (
                            up[(y / 2) * stride(1) + x / 2],
                            vp[(y / 2) * stride(2) + x / 2],
                        ),
                        None => {
                            let at = (y / 2) * stride(1) + (x / 2) * 2;
                            (up[at], up[at + 1])
                        }
                    };
                    let px = ycc.rgb(luma[y * w + x], ycc.chroma(cb), ycc.chroma(cr));
                    for c in 0..3 {
                        rgb[c * n + y * w + x] = px[c];
                    }
                }
            }
            Ok(Input {
                luma: Gray::new(w, h, luma.into_iter().map(unit).collect()),
                colour: Some(Rgb::new(w, h, rgb)),
            })
        }
        other => Err(format!(
            "input format {other:?} is not one nircolorize takes"
        )),
    }
}

/// BT.601 luminance of a colour frame: what its NIR would be when the chroma is flat.
fn luma_of(rgb: &Rgb) -> Gray {
    let n = rgb.width * rgb.height;
    let (r, g, b) = (rgb.plane(0), rgb.plane(1), rgb.plane(2));
    Gray::new(
        rgb.width,
        rgb.height,
        (0..n)
            .map(|i| 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i])
            .collect(),
    )
}

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
                        let (yy, b, r) = ycc.y(px(y * w + x));
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
