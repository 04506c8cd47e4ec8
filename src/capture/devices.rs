//! V4L2 camera discovery for `nircolor devices`: every video node with its driver, the formats
//! it delivers (and which of them nircolor captures) and their frame sizes.

use std::fs;
use std::path::{Path, PathBuf};

use v4l::video::Capture;
use v4l::Device;

use crate::capture::PixelFormat;

/// One format a device delivers.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceFormat {
    pub fourcc: String,
    pub description: String,
    /// The capture format nircolor uses for it, when it can use it.
    pub nircolor: Option<PixelFormat>,
    /// "640x480" for discrete sizes, or a range "160x120 - 1280x720 step 16/8".
    pub sizes: Vec<String>,
}

/// A video node: what it is, or why it could not be read.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    pub path: PathBuf,
    /// Stable /dev/v4l/by-id names pointing at this node (use these in configs).
    pub by_id: Vec<PathBuf>,
    pub card: String,
    pub driver: String,
    pub bus: String,
    pub formats: Vec<DeviceFormat>,
    /// Set when the node could not be opened or queried; the other fields are then empty.
    pub error: Option<String>,
}

/// The capture format for a V4L2 FourCC, when nircolor captures it.
pub fn nircolor_format(fourcc: &str) -> Option<PixelFormat> {
    match fourcc {
        "GREY" => Some(PixelFormat::Gray8),
        "Y16 " => Some(PixelFormat::Gray16Le),
        "YUYV" => Some(PixelFormat::Yuy2),
        "NV12" => Some(PixelFormat::Nv12),
        _ => None,
    }
}

/// The video nodes under `/dev`.
pub fn list() -> Vec<DeviceInfo> {
    list_in(Path::new("/dev"))
}

/// The `video*` nodes in `dev` (and the by-id links in `dev/v4l/by-id`), each opened and queried.
pub fn list_in(dev: &Path) -> Vec<DeviceInfo> {
    let mut nodes: Vec<PathBuf> = fs::read_dir(dev)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("video") && n[5..].chars().all(|c| c.is_ascii_digit())
            })
        })
        .collect();
    nodes.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n[5..].parse::<u32>().ok())
            .unwrap_or(u32::MAX)
    });
    let links: Vec<(PathBuf, PathBuf)> = fs::read_dir(dev.join("v4l/by-id"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.path(), fs::canonicalize(e.path()).ok()?)))
        .collect();
    nodes
        .into_iter()
        .map(|path| {
            let real = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            let mut by_id: Vec<PathBuf> = links
                .iter()
                .filter(|(_, target)| *target == real)
                .map(|(l, _)| l.clone())
                .collect();
            by_id.sort();
            query(&path, by_id)
        })
        .collect()
}

fn query(path: &Path, by_id: Vec<PathBuf>) -> DeviceInfo {
    let mut info = DeviceInfo {
        path: path.to_path_buf(),
        by_id,
        card: String::new(),
        driver: String::new(),
        bus: String::new(),
        formats: Vec::new(),
        error: None,
    };
    let device = match Device::with_path(path) {
        Ok(d) => d,
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (add the user to the 'video' group)"
            } else {
                ""
            };
            info.error = Some(format!("cannot open: {e}{hint}"));
            return info;
        }
    };
    let caps = match device.query_caps() {
        Ok(c) => c,
        Err(e) => {
            info.error = Some(format!("not a V4L2 device ({e})"));
            return info;
        }
    };
    (info.card, info.driver, info.bus) = (caps.card, caps.driver, caps.bus);
    match device.enum_formats() {
        Ok(formats) => {
            for f in formats {
                let fourcc = f
                    .fourcc
                    .str()
                    .map(str::to_string)
                    .unwrap_or_else(|_| format!("{:?}", f.fourcc.repr));
                let sizes = device
                    .enum_framesizes(f.fourcc)
                    .map(|sizes| sizes.iter().map(|s| s.size.to_string()).collect())
                    .unwrap_or_default();
                info.formats.push(DeviceFormat {
                    nircolor: nircolor_format(&fourcc),
                    fourcc,
                    description: f.description,
                    sizes,
                });
            }
        }
        // Metadata and output nodes have no capture formats; say so rather than fail.
        Err(e) => info.error = Some(format!("lists no capture formats ({e})")),
    }
    info
}

/// The text `nircolor devices` prints.
pub fn report(devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return "no V4L2 cameras found (no /dev/video* nodes). Plug a camera in, or use a `file`, `rtsp` or `test` source.\n".into();
    }
    let mut s = String::new();
    for d in devices {
        s += &format!("{}", d.path.display());
        for link in &d.by_id {
            s += &format!("  = {}", link.display());
        }
        s += "\n";
        if let Some(e) = &d.error {
            s += &format!("    {e}\n");
            continue;
        }
        s += &format!("    {} (driver {}, bus {})\n", d.card, d.driver, d.bus);
        for f in &d.formats {
            let use_as = f
                .nircolor
                .map_or("not captured by nircolor".to_string(), |p| {
                    format!("format = \"{}\"", p.caps_format())
                });
            s += &format!("    {:<4}  {:<28} {}\n", f.fourcc, f.description, use_as);
            if !f.sizes.is_empty() {
                s += &format!("          sizes: {}\n", f.sizes.join(", "));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_dev_folder_lists_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let devices = list_in(dir.path());
        assert!(devices.is_empty());
        assert!(report(&devices).contains("no V4L2 cameras found"));
        assert!(list_in(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_node_that_is_not_a_camera_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("video3"), b"").unwrap();
        fs::write(dir.path().join("video10"), b"").unwrap();
        fs::write(dir.path().join("videos.txt"), b"").unwrap();
        fs::create_dir_all(dir.path().join("v4l/by-id")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("video3"),
            dir.path().join("v4l/by-id/usb-NIR_Cam-video-index0"),
        )
        .unwrap();
        let devices = list_in(dir.path());
        let names: Vec<_> = devices
            .iter()
            .map(|d| d.path.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            ["video3", "video10"],
            "numeric order, non-nodes skipped"
        );
        assert!(
            devices[0]
                .error
                .as_deref()
                .unwrap()
                .contains("not a V4L2 device"),
            "{:?}",
            devices[0].error
        );
        assert_eq!(devices[0].by_id.len(), 1);
        let text = report(&devices);
        assert!(
            text.contains("video3  = ") && text.contains("usb-NIR_Cam-video-index0"),
            "{text}"
        );
    }

    #[test]
    fn fourccs_map_to_capture_formats() {
        assert_eq!(nircolor_format("GREY"), Some(PixelFormat::Gray8));
        assert_eq!(nircolor_format("Y16 "), Some(PixelFormat::Gray16Le));
        assert_eq!(nircolor_format("YUYV"), Some(PixelFormat::Yuy2));
        assert_eq!(nircolor_format("MJPG"), None);
    }
}
