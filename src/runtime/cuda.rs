//! CUDA, checked rather than assumed: tch links only what the binary references, and nothing
//! references libtorch_cuda, so the CUDA backend is missing unless the library is loaded before
//! the first CUDA query. This loads it (from the rpath or LD_LIBRARY_PATH, e.g. a GPU machine's
//! own torch/lib) once and then asks libtorch.

use std::ffi::CStr;
use std::sync::OnceLock;

/// Why CUDA is unusable, or None when it is usable.
fn probe() -> &'static Option<String> {
    static STATE: OnceLock<Option<String>> = OnceLock::new();
    STATE.get_or_init(|| {
        let lib = c"libtorch_cuda.so";
        // SAFETY: dlopen with a valid C string; the handle is deliberately kept open for the
        // life of the process.
        let handle = unsafe { libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if handle.is_null() {
            // SAFETY: dlerror returns a valid C string or null right after a failed dlopen.
            let err = unsafe { libc::dlerror() };
            let why = if err.is_null() {
                "unknown error".to_string()
            } else {
                // SAFETY: non-null, NUL-terminated, owned by libc until the next dl call.
                unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned()
            };
            return Some(format!(
                "libtorch_cuda.so could not be loaded ({why}); the bundled libtorch is CPU-only: point LD_LIBRARY_PATH at a CUDA build of torch 2.11.0's torch/lib"
            ));
        }
        if tch::Cuda::is_available() {
            None
        } else {
            Some("libtorch_cuda.so loaded but libtorch sees no CUDA device (driver missing or no GPU)".into())
        }
    })
}

/// Whether a CUDA device can run the models.
pub fn available() -> bool {
    probe().is_none()
}

/// Why CUDA is not available (empty when it is).
pub fn why_not() -> String {
    probe().clone().unwrap_or_default()
}

/// A line for logs: what runs where.
pub fn describe() -> String {
    match probe() {
        None => format!("CUDA: {} device(s)", tch::Cuda::device_count()),
        Some(why) => format!(
            "CPU ({} threads); CUDA unavailable: {why}",
            tch::get_num_threads()
        ),
    }
}
