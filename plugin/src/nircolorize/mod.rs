//! `nircolorize`: a video filter that colours NIR frames (GRAY8, GRAY16_LE, or colour formats
//! whose chroma is flat) and passes day-mode colour frames through.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

mod formats;
mod imp;

glib::wrapper! {
    pub struct NirColorize(ObjectSubclass<imp::NirColorize>)
        @extends gstreamer_video::VideoFilter, gstreamer_base::BaseTransform, gst::Element, gst::Object;
}

/// Registers `nircolorize` with `plugin` (or, with `None`, statically, for tests).
pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "nircolorize",
        gst::Rank::NONE,
        NirColorize::static_type(),
    )
}
