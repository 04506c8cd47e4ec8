//! A 3x5 pixel font for the few labels nircolor draws itself (the training curve, the "no
//! signal" card), so nothing depends on font files being installed.

use image::{Rgb, RgbImage};

/// 3x5 glyphs, one row per u8 (3 low bits, left pixel highest).
fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'a' => [0, 7, 1, 7, 7],
        'b' => [4, 4, 7, 5, 7],
        'c' => [0, 7, 4, 4, 7],
        'd' => [1, 1, 7, 5, 7],
        'e' => [7, 5, 7, 4, 7],
        'h' => [4, 4, 7, 5, 5],
        'l' => [6, 2, 2, 2, 7],
        'n' => [0, 6, 5, 5, 5],
        'o' => [0, 7, 5, 5, 7],
        'p' => [7, 5, 7, 4, 4],
        'r' => [0, 7, 4, 4, 4],
        's' => [7, 4, 7, 1, 7],
        'v' => [0, 5, 5, 5, 2],
        't' => [2, 7, 2, 2, 3],
        'i' => [2, 0, 2, 2, 2],
        'g' => [7, 5, 7, 1, 7],
        'm' => [0, 7, 7, 5, 5],
        'f' => [7, 4, 6, 4, 4],
        'k' => [5, 5, 6, 5, 5],
        'u' => [0, 5, 5, 5, 7],
        'w' => [0, 5, 5, 7, 7],
        'x' => [0, 5, 2, 5, 5],
        'y' => [5, 5, 7, 1, 7],
        'j' => [1, 0, 1, 5, 7],
        'q' => [7, 5, 7, 1, 1],
        'z' => [7, 1, 2, 4, 7],
        ':' => [0, 2, 0, 2, 0],
        '_' => [0, 0, 0, 0, 7],
        '/' => [1, 1, 2, 4, 4],
        _ => [0; 5],
    }
}

/// Draws `s` with its top-left corner at (x, y), each font pixel `px` image pixels wide;
/// clipped to the image.
pub fn text_scaled(img: &mut RgbImage, x: u32, y: u32, px: u32, s: &str, colour: Rgb<u8>) {
    let (w, h) = (img.width(), img.height());
    for (i, c) in s.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                let x0 = x + (i as u32 * 4 + col) * px;
                let y0 = y + row as u32 * px;
                for yy in y0..(y0 + px).min(h) {
                    for xx in x0..(x0 + px).min(w) {
                        img.put_pixel(xx, yy, colour);
                    }
                }
            }
        }
    }
}

/// [`text_scaled`] at 2 image pixels per font pixel.
pub fn text(img: &mut RgbImage, x: u32, y: u32, s: &str, colour: Rgb<u8>) {
    text_scaled(img, x, y, 2, s, colour);
}

/// The width in image pixels of `s` drawn `px` pixels per font pixel.
pub fn width(s: &str, px: u32) -> u32 {
    (s.chars().count() as u32 * 4).saturating_sub(1) * px
}
