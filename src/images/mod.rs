//! Images as every stage holds them: planar f32 NIR and colour, 8-bit RGB, conversions between
//! them, reading image files ([`read`]), and the bitmap font that writes labels onto frames and plots without font files.

pub mod font;
pub mod planes;
pub mod read;
