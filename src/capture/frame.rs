//! GStreamer's raw video frames as the colorizer reads them: the luma in [0, 1] and, for a
//! colour format, the RGB planes. One reader for the daemon's appsinks and the `nircolorize`
//! element, so both take the same formats the same way.

use gstreamer as gst;
use gstreamer::BufferRef;
use gstreamer_video as gst_video;
use gstreamer_video::{VideoColorRange, VideoFormat, VideoFrameExt, VideoFrameRef};

use crate::images::planes::{byte, unit, Gray, Rgb};

/// The formats [`read`] takes: NIR as gray (8 or 16 bits), and colour formats (a day/night
/// camera by day; many cameras send NIR as YUV or RGB with flat chroma).
pub const FORMATS: [VideoFormat; 7] = [
    VideoFormat::Gray8,
    VideoFormat::Gray16Le,
    VideoFormat::Rgb,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::I420,
    VideoFormat::Nv12,
];

/// A frame's planes: its luminance, and its colour when the format has one.
#[derive(Clone, Debug)]
pub struct Planes {
    /// BT.601 luma of a colour frame, so that NIR sent with flat chroma keeps its values; the
    /// Y plane of a YUV frame.
    pub luma: Gray,
    pub colour: Option<Rgb>,
}

/// Why a frame could not be read (the caller skips it and says so).
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("sample without caps")]
    NoCaps,
    #[error("sample without buffer")]
    NoBuffer,
    #[error("unreadable video frame: {0}")]
    Video(#[from] gst::glib::BoolError),
    #[error("format {0:?} is not one nircolor reads (GRAY8, GRAY16_LE, RGB, RGBx, BGRx, I420, NV12): convert to one of them first (videoconvert)")]
    Format(VideoFormat),
    #[error("short frame: plane {plane} holds {got} bytes where {width}x{height} needs {wanted}")]
    Short {
        plane: u32,
        got: usize,
        wanted: usize,
        width: usize,
        height: usize,
    },
}

/// The Y'CbCr constants of a frame's colorimetry: the luma weights and the range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ycc {
    kr: f32,
    kb: f32,
    /// Limited ("TV") range: Y in 16..235, Cb and Cr in 16..240.
    limited: bool,
}

impl Ycc {
    /// The constants of `info`'s colorimetry; BT.601 when the caps leave the matrix open, as
    /// `videoconvert` assumes for standard definition.
    pub fn of(info: &gst_video::VideoInfo) -> Ycc {
        let c = info.colorimetry();
        let (kr, kb) = c.matrix().kr_kb().unwrap_or((0.299, 0.114));
        Ycc {
            kr: kr as f32,
            kb: kb as f32,
            limited: c.range() != VideoColorRange::Range0_255,
        }
    }

    /// A Y byte as luma in [0, 1] (limited range may stray outside; clamp later).
    pub fn luma(&self, y: u8) -> f32 {
        if self.limited {
            (f32::from(y) - 16.0) / 219.0
        } else {
            f32::from(y) / 255.0
        }
    }

    /// A Cb or Cr byte as chroma in [-0.5, 0.5].
    pub fn chroma(&self, c: u8) -> f32 {
        if self.limited {
            (f32::from(c) - 128.0) / 224.0
        } else {
            (f32::from(c) - 128.0) / 255.0
        }
    }

    /// R, G, B of a pixel's luma and chroma.
    pub fn rgb(&self, y: f32, cb: f32, cr: f32) -> [f32; 3] {
        let kg = 1.0 - self.kr - self.kb;
        let r = y + 2.0 * (1.0 - self.kr) * cr;
        let b = y + 2.0 * (1.0 - self.kb) * cb;
        let g = (y - self.kr * r - self.kb * b) / kg;
        [r, g, b]
    }

    /// Y, Cb, Cr of an RGB pixel in [0, 1].
    pub fn ycc(&self, rgb: [f32; 3]) -> (f32, f32, f32) {
        let y = self.kr * rgb[0] + (1.0 - self.kr - self.kb) * rgb[1] + self.kb * rgb[2];
        let cb = (rgb[2] - y) / (2.0 * (1.0 - self.kb));
        let cr = (rgb[0] - y) / (2.0 * (1.0 - self.kr));
        (y, cb, cr)
    }

    /// Luma in [0, 1] as a Y byte.
    pub fn y_byte(&self, y: f32) -> u8 {
        if self.limited {
            byte(16.0 + 219.0 * y)
        } else {
            byte(255.0 * y)
        }
    }

    /// Chroma in [-0.5, 0.5] as a Cb or Cr byte.
    pub fn c_byte(&self, c: f32) -> u8 {
        byte(128.0 + if self.limited { 224.0 } else { 255.0 } * c)
    }
}

/// The rows of plane `i`: `rows` of `row_bytes` each, `stride` apart, checked against the
/// mapped data (a buffer shorter than its caps say is refused, not read past).
fn rows<'a>(
    frame: &'a VideoFrameRef<&BufferRef>,
    i: u32,
    rows: usize,
    row_bytes: usize,
) -> Result<impl Iterator<Item = &'a [u8]>, FrameError> {
    let data = frame.plane_data(i)?;
    let stride = frame.plane_stride()[i as usize] as usize;
    let wanted = if rows == 0 {
        0
    } else {
        (rows - 1) * stride + row_bytes
    };
    if data.len() < wanted || stride < row_bytes {
        return Err(FrameError::Short {
            plane: i,
            got: data.len(),
            wanted,
            width: frame.width() as usize,
            height: frame.height() as usize,
        });
    }
    Ok((0..rows).map(move |y| &data[y * stride..][..row_bytes]))
}

/// Reads a mapped frame of one of [`FORMATS`].
pub fn read(frame: &VideoFrameRef<&BufferRef>) -> Result<Planes, FrameError> {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let n = w * h;
    match frame.format() {
        VideoFormat::Gray8 => {
            let mut luma = Vec::with_capacity(n);
            for row in rows(frame, 0, h, w)? {
                luma.extend(row.iter().map(|&v| f32::from(v) / 255.0));
            }
            Ok(Planes {
                luma: Gray::new(w, h, luma),
                colour: None,
            })
        }
        VideoFormat::Gray16Le => {
            let mut luma = Vec::with_capacity(n);
            for row in rows(frame, 0, h, 2 * w)? {
                luma.extend(
                    row.chunks_exact(2)
                        .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])) / 65535.0),
                );
            }
            Ok(Planes {
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
            let mut rgb = vec![0.0f32; 3 * n];
            let mut luma = Vec::with_capacity(n);
            for (y, row) in rows(frame, 0, h, step * w)?.enumerate() {
                for (x, px) in row.chunks_exact(step).enumerate() {
                    let [r, g, b] = order.map(|c| f32::from(px[c]) / 255.0);
                    let i = y * w + x;
                    (rgb[i], rgb[n + i], rgb[2 * n + i]) = (r, g, b);
                    luma.push(0.299 * r + 0.587 * g + 0.114 * b);
                }
            }
            Ok(Planes {
                luma: Gray::new(w, h, luma),
                colour: Some(Rgb::new(w, h, rgb)),
            })
        }
        f @ (VideoFormat::I420 | VideoFormat::Nv12) => {
            let ycc = Ycc::of(frame.info());
            let mut luma = Vec::with_capacity(n);
            for row in rows(frame, 0, h, w)? {
                luma.extend(row.iter().map(|&v| ycc.luma(v)));
            }
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            // Chroma rows as (Cb, Cr) pairs per 2x2 block: two planes for I420, one
            // interleaved for NV12.
            let mut chroma: Vec<(u8, u8)> = Vec::with_capacity(cw * ch);
            if f == VideoFormat::I420 {
                for (u, v) in rows(frame, 1, ch, cw)?.zip(rows(frame, 2, ch, cw)?) {
                    chroma.extend(u.iter().copied().zip(v.iter().copied()));
                }
            } else {
                for uv in rows(frame, 1, ch, 2 * cw)? {
                    chroma.extend(uv.chunks_exact(2).map(|p| (p[0], p[1])));
                }
            }
            let mut rgb = vec![0.0f32; 3 * n];
            for y in 0..h {
                for x in 0..w {
                    let (cb, cr) = chroma[(y / 2) * cw + x / 2];
                    let i = y * w + x;
                    let px = ycc.rgb(luma[i], ycc.chroma(cb), ycc.chroma(cr));
                    (rgb[i], rgb[n + i], rgb[2 * n + i]) = (px[0], px[1], px[2]);
                }
            }
            Ok(Planes {
                luma: Gray::new(w, h, luma.into_iter().map(unit).collect()),
                colour: Some(Rgb::new(w, h, rgb)),
            })
        }
        other => Err(FrameError::Format(other)),
    }
}

/// Reads an appsink's sample: its caps say the format and size.
pub fn read_sample(sample: &gst::Sample) -> Result<Planes, FrameError> {
    let caps = sample.caps().ok_or(FrameError::NoCaps)?;
    let info = gst_video::VideoInfo::from_caps(caps)?;
    let buffer = sample.buffer().ok_or(FrameError::NoBuffer)?;
    let frame = VideoFrameRef::from_buffer_ref_readable(buffer, &info)?;
    read(&frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `format` frame of `w` x `h` whose bytes are set by `fill(plane, offset in the plane,
    /// stride)`, read back through [`read`].
    fn frame_of(
        format: VideoFormat,
        w: u32,
        h: u32,
        fill: impl Fn(usize, usize, usize) -> u8,
    ) -> Result<Planes, FrameError> {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(format, w, h).build().unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        {
            let data = buffer.get_mut().unwrap();
            let mut map = data.map_writable().unwrap();
            for plane in 0..info.n_planes() as usize {
                let (start, stride) = (info.offset()[plane], info.stride()[plane] as usize);
                let end = info
                    .offset()
                    .get(plane + 1)
                    .copied()
                    .filter(|&e| e > start)
                    .unwrap_or(info.size());
                for (k, b) in map[start..end].iter_mut().enumerate() {
                    *b = fill(plane, k, stride);
                }
            }
        }
        let frame = VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), &info)?;
        read(&frame)
    }

    #[test]
    fn gray_frames_honour_the_row_stride() {
        // 5 pixels a row, rows padded to 8 bytes: the padding must not be read as pixels.
        let p = frame_of(VideoFormat::Gray8, 5, 3, |_, k, stride| {
            let (y, x) = (k / stride, k % stride);
            if x < 5 {
                (10 * y + x) as u8
            } else {
                255
            }
        })
        .unwrap();
        assert!(p.colour.is_none());
        let bytes: Vec<u8> = p
            .luma
            .data
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        assert_eq!(
            bytes,
            [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 20, 21, 22, 23, 24]
        );
        let p = frame_of(VideoFormat::Gray16Le, 3, 2, |_, k, _| {
            if k % 2 == 0 {
                0x00
            } else {
                0x80
            }
        })
        .unwrap();
        assert!(p
            .luma
            .data
            .iter()
            .all(|&v| (v - 32768.0 / 65535.0).abs() < 1e-6));
    }

    #[test]
    fn packed_rgb_orders_are_told_apart_and_give_bt601_luma() {
        let (r, g, b) = (200u8, 100u8, 50u8);
        for (format, bytes) in [
            (VideoFormat::Rgb, vec![r, g, b]),
            (VideoFormat::Rgbx, vec![r, g, b, 0]),
            (VideoFormat::Bgrx, vec![b, g, r, 0]),
        ] {
            let step = bytes.len();
            let p = frame_of(format, 4, 2, |_, k, stride| bytes[(k % stride) % step]).unwrap();
            let colour = p.colour.expect("colour planes");
            let want = [r, g, b].map(|v| f32::from(v) / 255.0);
            for (c, want) in want.iter().enumerate() {
                assert!(
                    colour.plane(c).iter().all(|&v| (v - want).abs() < 1e-6),
                    "{format:?} channel {c}"
                );
            }
            let luma = 0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2];
            assert!(p.luma.data.iter().all(|&v| (v - luma).abs() < 1e-6));
        }
    }

    #[test]
    fn yuv_frames_give_their_luma_and_colour() {
        let ycc = Ycc {
            kr: 0.299,
            kb: 0.114,
            limited: true,
        };
        let want = [0.8f32, 0.3, 0.2];
        let (y, cb, cr) = ycc.ycc(want);
        let (yb, cbb, crb) = (ycc.y_byte(y), ycc.c_byte(cb), ycc.c_byte(cr));
        for format in [VideoFormat::I420, VideoFormat::Nv12] {
            // 6x4 with odd chroma rows: I420's chroma planes are 3x2, NV12's one plane 6x2.
            let p = frame_of(format, 6, 4, |plane, k, stride| match (format, plane) {
                (_, 0) => yb,
                (VideoFormat::I420, 1) => cbb,
                (VideoFormat::I420, _) => crb,
                _ => {
                    if (k % stride) % 2 == 0 {
                        cbb
                    } else {
                        crb
                    }
                }
            })
            .unwrap();
            let colour = p.colour.expect("colour planes");
            for (c, want) in want.iter().enumerate() {
                // 8-bit Y'CbCr keeps colour within a couple of levels.
                assert!(
                    colour
                        .plane(c)
                        .iter()
                        .all(|&v| (v - want).abs() < 2.5 / 255.0),
                    "{format:?} channel {c}: {} against {want}",
                    colour.plane(c)[0],
                );
            }
            assert!(p.luma.data.iter().all(|&v| (v - y).abs() < 1.0 / 255.0));
        }
        // Flat chroma, as a NIR camera sends: R = G = B = the luma.
        let p = frame_of(
            VideoFormat::I420,
            4,
            4,
            |plane, _, _| if plane == 0 { 126 } else { 128 },
        )
        .unwrap();
        let colour = p.colour.unwrap();
        let l = p.luma.data[0];
        assert!((0..3).all(|c| colour.plane(c).iter().all(|&v| (v - l).abs() < 1e-5)));
    }

    #[test]
    fn other_formats_are_refused_saying_what_to_do() {
        let err = frame_of(VideoFormat::Yuy2, 4, 2, |_, _, _| 0).unwrap_err();
        assert!(
            matches!(err, FrameError::Format(VideoFormat::Yuy2)),
            "{err}"
        );
        assert!(err.to_string().contains("videoconvert"), "{err}");
    }

    #[test]
    fn a_buffer_shorter_than_its_caps_is_refused() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(VideoFormat::Gray8, 64, 48)
            .build()
            .unwrap();
        let short = gst::Buffer::with_size(info.size() / 2).unwrap();
        // GStreamer refuses to map it, or the row check refuses to read it: never a panic.
        let read = VideoFrameRef::from_buffer_ref_readable(short.as_ref(), &info)
            .map_err(FrameError::from)
            .and_then(|f| read(&f));
        assert!(read.is_err());
    }
}
