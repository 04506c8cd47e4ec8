"""nircolorize from Python, as a PyGObject user drives it: parse a pipeline, play it to the
end, read the element's statistics. Prints them as JSON (tests/element.rs checks them).

GST_PLUGIN_PATH must name the folder of libgstnircolor.so (target/release)."""
import json
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

Gst.init(None)
frames = int(sys.argv[1]) if len(sys.argv) > 1 else 60
pipeline = Gst.parse_launch(
    f"videotestsrc pattern=ball num-buffers={frames} is-live=true "
    "! video/x-raw,format=GRAY8,width=160,height=120,framerate=30/1 "
    "! nircolorize name=c ! video/x-raw,format=I420 ! fakesink"
)
element = pipeline.get_by_name("c")
pipeline.set_state(Gst.State.PLAYING)
message = pipeline.get_bus().timed_pop_filtered(
    30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR
)
ok = message is not None and message.type == Gst.MessageType.EOS
error = None
if message is not None and message.type == Gst.MessageType.ERROR:
    error = str(message.parse_error()[0])
stats = {
    name: element.get_property(name)
    for name in ("frames", "refreshes", "colour-age", "model-users", "model", "refresh-fps")
}
pipeline.set_state(Gst.State.NULL)
print(json.dumps({"eos": ok, "error": error, **stats}))
