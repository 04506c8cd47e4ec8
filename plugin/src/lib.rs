//! `libgstnircolor.so`: the GStreamer plugin that holds `nircolorize`, nircolor's
//! near-infrared to colour filter, for any pipeline (`gst-launch-1.0 v4l2src ! nircolorize !
//! videoconvert ! x264enc ! ...`). Every element of a process shares one model per weights
//! file and device through nircolor's colour service.

use gstreamer as gst;

pub mod nircolorize;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    nircolorize::register(plugin)
}

gst::plugin_define!(
    nircolor,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    // The licence GStreamer's registry knows; the crate is MIT OR Apache-2.0.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "https://github.com/nircolor/nircolor",
    "2026-12-04"
);
