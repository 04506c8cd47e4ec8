//! Colour planes to the I420 that x264 encodes, converted here rather than by `videoconvert`:
//! one pass from the f32 planes (no 8-bit RGB in between), and measured at 4x 640x480 the
//! conversion chain was a fifth of the daemon's CPU.

use crate::images::planes::{byte, unit, Rgb};

/// The luma weights of a Y'CbCr matrix, and the name GStreamer's caps give it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matrix {
    kr: f32,
    kb: f32,
    pub colorimetry: &'static str,
}

/// BT.601, what GStreamer (and players) assume for standard-definition video.
pub const BT601: Matrix = Matrix {
    kr: 0.299,
    kb: 0.114,
    colorimetry: "bt601",
};

/// BT.709, what they assume above 576 lines.
pub const BT709: Matrix = Matrix {
    kr: 0.2126,
    kb: 0.0722,
    colorimetry: "bt709",
};

/// GStreamer's default for a frame of this height (the matrix `videoconvert` would pick).
pub fn matrix_for(height: usize) -> Matrix {
    if height > 576 {
        BT709
    } else {
        BT601
    }
}

/// Where the three planes of an I420 buffer lie, as GStreamer lays them out (each row padded
/// to a multiple of 4 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    pub width: usize,
    pub height: usize,
    pub offsets: [usize; 3],
    pub strides: [usize; 3],
    pub size: usize,
}

impl Layout {
    /// The layout of an even-sized frame, from GStreamer's own video info.
    pub fn new(width: usize, height: usize) -> Result<Layout, String> {
        gstreamer::init().map_err(|e| format!("GStreamer cannot start: {e}"))?;
        let info = gstreamer_video::VideoInfo::builder(
            gstreamer_video::VideoFormat::I420,
            width as u32,
            height as u32,
        )
        .build()
        .map_err(|e| format!("I420 {width}x{height}: {e}"))?;
        let offsets = info.offset();
        let strides = info.stride();
        Ok(Layout {
            width,
            height,
            offsets: [offsets[0], offsets[1], offsets[2]],
            strides: [
                strides[0] as usize,
                strides[1] as usize,
                strides[2] as usize,
            ],
            size: info.size(),
        })
    }
}

/// Limited-range ("TV") 8-bit I420 of `rgb` (values clamped to [0, 1]; NaN as 0): Y from every
/// pixel, Cb and Cr from the mean colour of each 2x2 block.
pub fn from_rgb(rgb: &Rgb, layout: &Layout, matrix: Matrix) -> Vec<u8> {
    assert_eq!(
        (rgb.width, rgb.height),
        (layout.width, layout.height),
        "frame and layout sizes differ"
    );
    assert!(
        rgb.width % 2 == 0 && rgb.height % 2 == 0,
        "I420 needs an even width and height"
    );
    let mut out = vec![0u8; layout.size];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support, the only requirement of the callee, was just checked.
            unsafe { convert_avx2(rgb, layout, matrix, &mut out) };
            return out;
        }
    }
    convert(rgb, layout, matrix, &mut out);
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn convert_avx2(rgb: &Rgb, layout: &Layout, matrix: Matrix, out: &mut [u8]) {
    convert(rgb, layout, matrix, out)
}

#[inline(always)]
fn convert(rgb: &Rgb, layout: &Layout, m: Matrix, out: &mut [u8]) {
    let (w, h) = (rgb.width, rgb.height);
    let n = w * h;
    let (r, rest) = rgb.data.split_at(n);
    let (g, b) = rest.split_at(n);
    let kg = 1.0 - m.kr - m.kb;
    // 219 and 224 levels: the limited range of 8-bit video (Y 16..235, Cb/Cr 16..240).
    let (ys, cs) = (219.0f32, 224.0f32);
    let (cb_scale, cr_scale) = (cs / (2.0 * (1.0 - m.kb)), cs / (2.0 * (1.0 - m.kr)));
    let (y_plane, chroma) = out.split_at_mut(layout.offsets[1]);
    let (u_plane, v_plane) = chroma.split_at_mut(layout.offsets[2] - layout.offsets[1]);
    let cw = w / 2;
    // Per chroma column: the clamped sum of the two pixels above it, per channel, from the even
    // row; the odd row adds its own and emits the block's mean.
    let mut pairs = [vec![0.0f32; cw], vec![0.0f32; cw], vec![0.0f32; cw]];
    for y in 0..h {
        let row = y * w;
        let (rr, gr, br) = (&r[row..row + w], &g[row..row + w], &b[row..row + w]);
        let dst = &mut y_plane[y * layout.strides[0]..][..w];
        for (((d, &rv), &gv), &bv) in dst.iter_mut().zip(rr).zip(gr).zip(br) {
            let luma = m.kr * unit(rv) + kg * unit(gv) + m.kb * unit(bv);
            *d = byte(16.0 + ys * luma);
        }
        for (sum, src) in pairs.iter_mut().zip([rr, gr, br]) {
            if y % 2 == 0 {
                for (s, p) in sum.iter_mut().zip(src.chunks_exact(2)) {
                    *s = unit(p[0]) + unit(p[1]);
                }
            } else {
                for (s, p) in sum.iter_mut().zip(src.chunks_exact(2)) {
                    *s += unit(p[0]) + unit(p[1]);
                }
            }
        }
        if y % 2 == 1 {
            let cy = y / 2;
            let u = &mut u_plane[cy * layout.strides[1]..][..cw];
            let v = &mut v_plane[cy * layout.strides[2]..][..cw];
            let [rs, gs, bs] = &pairs;
            for ((((u, v), &rs), &gs), &bs) in
                u.iter_mut().zip(v.iter_mut()).zip(rs).zip(gs).zip(bs)
            {
                let (rm, gm, bm) = (rs * 0.25, gs * 0.25, bs * 0.25);
                let luma = m.kr * rm + kg * gm + m.kb * bm;
                *u = byte(128.0 + cb_scale * (bm - luma));
                *v = byte(128.0 + cr_scale * (rm - luma));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: usize, h: usize, c: [f32; 3]) -> Rgb {
        let mut data = Vec::with_capacity(3 * w * h);
        for v in c {
            data.extend(std::iter::repeat_n(v, w * h));
        }
        Rgb::new(w, h, data)
    }

    fn first(out: &[u8], layout: &Layout) -> [u8; 3] {
        [out[0], out[layout.offsets[1]], out[layout.offsets[2]]]
    }

    #[test]
    fn primaries_land_on_the_limited_range_values() {
        // The BT.601 8-bit values every reference table gives (e.g. ITU-R BT.601 Table 3).
        let layout = Layout::new(4, 2).unwrap();
        let cases = [
            ([0.0, 0.0, 0.0], [16, 128, 128]),
            ([1.0, 1.0, 1.0], [235, 128, 128]),
            ([1.0, 0.0, 0.0], [81, 90, 240]),
            ([0.0, 1.0, 0.0], [145, 54, 34]),
            ([0.0, 0.0, 1.0], [41, 240, 110]),
        ];
        for (c, want) in cases {
            let out = from_rgb(&solid(4, 2, c), &layout, BT601);
            assert_eq!(first(&out, &layout), want, "{c:?}");
        }
    }

    #[test]
    fn out_of_range_and_nan_clamp() {
        let layout = Layout::new(2, 2).unwrap();
        let out = from_rgb(&solid(2, 2, [f32::NAN, -3.0, 0.0]), &layout, BT601);
        assert_eq!(first(&out, &layout), [16, 128, 128]);
        let out = from_rgb(&solid(2, 2, [7.0, 1.5, 1.0]), &layout, BT709);
        assert_eq!(first(&out, &layout), [235, 128, 128]);
    }

    #[test]
    fn rows_follow_gstreamer_strides_and_chroma_averages_2x2() {
        // 642 wide: Y rows of 644 bytes and chroma rows of 324 (321 rounded up to 4).
        let (w, h) = (642, 4);
        let layout = Layout::new(w, h).unwrap();
        assert_eq!(layout.strides, [644, 324, 324]);
        // Left half white, right half black; one black column inside the first 2x2 block.
        let mut rgb = solid(w, h, [0.0; 3]);
        for c in 0..3 {
            for y in 0..h {
                for x in 1..w / 2 {
                    rgb.data[c * w * h + y * w + x] = 1.0;
                }
            }
        }
        let out = from_rgb(&rgb, &layout, BT601);
        for y in 0..h {
            let row = &out[y * layout.strides[0]..][..w];
            assert_eq!((row[0], row[1], row[w - 1]), (16, 235, 16), "row {y}");
            assert!(out[y * layout.strides[0] + w..(y + 1) * layout.strides[0]]
                .iter()
                .all(|&p| p == 0));
        }
        // Neutral colours keep neutral chroma whatever the mix.
        for plane in 1..3 {
            for cy in 0..h / 2 {
                let row = &out[layout.offsets[plane] + cy * layout.strides[plane]..][..w / 2];
                assert!(row.iter().all(|&c| c == 128), "plane {plane} row {cy}");
            }
        }
    }
}
