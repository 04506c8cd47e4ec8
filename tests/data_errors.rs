//! Bad datasets give clear errors naming the file, never a panic; odd-but-valid inputs load.

mod common;

use std::fs;
use std::path::Path;

use image::{ImageBuffer, Luma, Rgb};
use nircolor::images::read::{read_nir, read_rgb, ImageFileError};
use nircolor::offline::data::{DataError, Dataset};

fn open_err(dir: &Path) -> String {
    let err = Dataset::open(dir).unwrap_err();
    err.to_string()
}

#[test]
fn missing_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let msg = open_err(&missing);
    assert!(
        msg.contains("does not exist") && msg.contains("nope"),
        "{msg}"
    );
    // A dataset folder without nir/ is the same defect one level down.
    let msg = open_err(dir.path());
    assert!(
        msg.contains("nir") && msg.contains("does not exist"),
        "{msg}"
    );
}

#[test]
fn empty_folder_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("nir")).unwrap();
    fs::create_dir_all(dir.path().join("rgb")).unwrap();
    fs::write(dir.path().join("nir/readme.txt"), "not an image").unwrap();
    let msg = open_err(dir.path());
    assert!(msg.contains("holds no PNG, JPEG or TIFF"), "{msg}");
}

#[test]
fn nir_without_partner_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 2, 8, 8);
    common::gray(8, 8)
        .save(dir.path().join("nir/lonely.png"))
        .unwrap();
    let msg = open_err(dir.path());
    assert!(
        msg.contains("lonely.png") && msg.contains("no partner"),
        "{msg}"
    );
}

#[test]
fn rgb_without_partner_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 1, 8, 8);
    common::rgb(8, 8)
        .save(dir.path().join("rgb/orphan.png"))
        .unwrap();
    let msg = open_err(dir.path());
    assert!(
        msg.contains("orphan.png") && msg.contains("no partner"),
        "{msg}"
    );
}

#[test]
fn missing_mask_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 2, 8, 8);
    fs::create_dir_all(dir.path().join("mask")).unwrap();
    image::GrayImage::from_pixel(8, 8, Luma([255]))
        .save(dir.path().join("mask/p0.png"))
        .unwrap();
    let msg = open_err(dir.path());
    assert!(msg.contains("p1.png") && msg.contains("mask"), "{msg}");
}

#[test]
fn duplicate_stems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 1, 8, 8);
    common::rgb(8, 8)
        .save(dir.path().join("rgb/p0.jpg"))
        .unwrap();
    let msg = open_err(dir.path());
    assert!(msg.contains("p0.png") && msg.contains("p0.jpg"), "{msg}");
}

#[test]
fn differing_sizes_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 1, 8, 8);
    common::rgb(9, 8)
        .save(dir.path().join("rgb/p0.png"))
        .unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let err = ds.load(0).unwrap_err();
    assert!(matches!(err, DataError::SizeMismatch { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("nir/p0.png")
            && msg.contains("rgb/p0.png")
            && msg.contains("8x8")
            && msg.contains("9x8"),
        "{msg}"
    );
}

#[test]
fn differing_mask_size_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 1, 8, 8);
    fs::create_dir_all(dir.path().join("mask")).unwrap();
    image::GrayImage::new(8, 7)
        .save(dir.path().join("mask/p0.png"))
        .unwrap();
    let msg = Dataset::open(dir.path())
        .unwrap()
        .load(0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("mask/p0.png") && msg.contains("8x7"), "{msg}");
}

#[test]
fn truncated_file_is_named_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 1, 64, 64);
    let path = dir.path().join("nir/p0.png");
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = Dataset::open(dir.path()).unwrap().load(0).unwrap_err();
    assert!(
        matches!(err, DataError::Image(ImageFileError::Unreadable { .. })),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("nir/p0.png")
            && msg.len() > "cannot read ".len() + path.display().to_string().len() + 4,
        "{msg}"
    );
}

#[test]
fn garbage_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 1, 8, 8);
    fs::write(dir.path().join("rgb/p0.png"), b"this is not a PNG").unwrap();
    let msg = Dataset::open(dir.path())
        .unwrap()
        .load(0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("rgb/p0.png") && msg.contains("cannot read"),
        "{msg}"
    );
}

#[test]
fn colour_nir_is_rejected_but_equal_channels_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let equal = dir.path().join("equal.png");
    ImageBuffer::from_fn(4, 3, |x, _| Rgb([x as u8 * 50; 3]))
        .save(&equal)
        .unwrap();
    let nir = read_nir(&equal).unwrap();
    assert_eq!(nir.data[1], 50.0 / 255.0);
    let colour = dir.path().join("colour.png");
    ImageBuffer::from_fn(4, 3, |x, y| {
        Rgb([x as u8, x as u8, if (x, y) == (2, 1) { 9 } else { x as u8 }])
    })
    .save(&colour)
    .unwrap();
    let msg = read_nir(&colour).unwrap_err().to_string();
    assert!(
        msg.contains("colour.png") && msg.contains("(2, 1)"),
        "{msg}"
    );
}

#[test]
fn gray_ground_truth_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gt.png");
    common::gray(4, 4).save(&path).unwrap();
    let msg = read_rgb(&path).unwrap_err().to_string();
    assert!(msg.contains("gt.png") && msg.contains("grayscale"), "{msg}");
}

#[test]
fn sixteen_bit_tiff_and_jpeg_load() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("nir")).unwrap();
    fs::create_dir_all(dir.path().join("rgb")).unwrap();
    let nir16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(6, 5, |x, _| Luma([x as u16 * 13107]));
    nir16.save(dir.path().join("nir/a.tif")).unwrap();
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(6, 5, |_, _| Rgb([65535, 32896, 0]));
    rgb16.save(dir.path().join("rgb/a.png")).unwrap();
    nir16.save(dir.path().join("nir/b.png")).unwrap();
    common::rgb(6, 5)
        .save(dir.path().join("rgb/b.jpg"))
        .unwrap();
    let ds = Dataset::open(dir.path()).unwrap();
    let a = ds.load(0).unwrap();
    assert_eq!(a.nir.data[5], 1.0);
    assert_eq!(a.rgb.get_pixel(0, 0).0, [255, 128, 0]);
    let b = ds.load(1).unwrap();
    assert_eq!((b.rgb.width(), b.nir.data[1]), (6, 0.2));
}

#[test]
fn selection_lists_filter_and_an_empty_selection_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    common::dataset(dir.path(), 3, 8, 8);
    let list = dir.path().join("list.txt");
    fs::write(&list, "# held out\np1\n\n p2 # trailing comment\n").unwrap();
    let names = nircolor::offline::data::read_stem_list(&list).unwrap();
    let kept = Dataset::open(dir.path())
        .unwrap()
        .select(None, &names)
        .unwrap();
    assert_eq!(
        kept.pairs
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["p0"]
    );
    let only = Dataset::open(dir.path())
        .unwrap()
        .select(Some(&names), &Default::default())
        .unwrap();
    assert_eq!(only.len(), 2);
    let msg = Dataset::open(dir.path())
        .unwrap()
        .select(Some(&names), &names)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("no pair"), "{msg}");
}
