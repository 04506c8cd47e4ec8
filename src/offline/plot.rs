//! Line charts as PNG (plotters): labelled axes with units, a legend, several series per chart,
//! for per-frame video figures and learning curves.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

/// Where the chart font is looked for: Debian's fonts-dejavu-core (scripts/setup installs it).
const FONT_FILES: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// One chart of a figure.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// (legend, points)
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("no chart font: none of {0:?} exists; install Debian's fonts-dejavu-core (scripts/setup does)")]
    NoFont(Vec<&'static str>),
    #[error("cannot draw {path}: {why}")]
    Draw { path: PathBuf, why: String },
}

fn font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        FONT_FILES.iter().any(|f| {
            std::fs::read(f).is_ok_and(|bytes| {
                // plotters keeps the font for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::NoFont(FONT_FILES.to_vec()))
    }
}

/// Draws `charts` one above the other into a PNG of `width` x (`height` per chart).
pub fn charts_png(path: &Path, charts: &[Chart], width: u32, height: u32) -> Result<(), PlotError> {
    font()?;
    let draw = |why: String| PlotError::Draw {
        path: path.to_path_buf(),
        why,
    };
    let root =
        BitMapBackend::new(path, (width, height * charts.len().max(1) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw(e.to_string()))?;
    let areas = root.split_evenly((charts.len().max(1), 1));
    for (chart, area) in charts.iter().zip(areas) {
        let points = chart.series.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in points.filter(|(x, y)| x.is_finite() && y.is_finite()) {
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        let pad = ((y1 - y0) * 0.08).max(1e-6);
        // One range each for the axes and the legend's placement.
        let (x_range, y_range) = ((x0, x1.max(x0 + 1e-9)), (y0 - pad, y1 + pad));
        let mut c = ChartBuilder::on(&area)
            .caption(chart.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
            .map_err(|e| draw(e.to_string()))?;
        c.configure_mesh()
            .x_desc(chart.x_label)
            .y_desc(chart.y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| draw(e.to_string()))?;
        for (i, (name, pts)) in chart.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba().stroke_width(2);
            c.draw_series(LineSeries::new(
                pts.iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite()),
                colour,
            ))
            .map_err(|e| draw(e.to_string()))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        let (plot_w, plot_h) = c.plotting_area().dim_in_pixel();
        let legend = legend_box(&chart.series, plot_w, plot_h);
        let corner = legend_corner(&chart.series, x_range, y_range, legend);
        c.configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| draw(e.to_string()))?;
    }
    root.present().map_err(|e| draw(e.to_string()))?;
    Ok(())
}

/// The legend's size as fractions of the plotting area (`w` x `h` pixels): about 8 pixels a
/// character of the longest name beside a 20-pixel line, and 20 pixels a row, at the legend's
/// 14-point font.
fn legend_box(series: &[(String, Vec<(f64, f64)>)], w: u32, h: u32) -> (f64, f64) {
    let chars = series
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let fw = (40.0 + 8.0 * chars as f64) / f64::from(w.max(1));
    let fh = (10.0 + 20.0 * series.len() as f64) / f64::from(h.max(1));
    (fw.min(1.0), fh.min(1.0))
}

/// The corner whose legend box of `size` (fractions of the area) hides the fewest points of
/// the data (plotters' default, the middle of the right side, hides the last epochs of a
/// learning curve); on a tie the first of upper right, upper left, lower right, lower left.
fn legend_corner(
    series: &[(String, Vec<(f64, f64)>)],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (fw, fh): (f64, f64),
) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperRight, 1.0 - fw, 1.0 - fh),
        (SeriesLabelPosition::UpperLeft, 0.0, 1.0 - fh),
        (SeriesLabelPosition::LowerRight, 1.0 - fw, 0.0),
        (SeriesLabelPosition::LowerLeft, 0.0, 0.0),
    ];
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(x, y)| {
            (
                (x - x0) / (x1 - x0).max(1e-12),
                (y - y0) / (y1 - y0).max(1e-12),
            )
        })
        .collect();
    let hidden = |fx: f64, fy: f64| {
        points
            .iter()
            .filter(|(x, y)| (fx..=fx + fw).contains(x) && (fy..=fy + fh).contains(y))
            .count()
    };
    corners
        .into_iter()
        .min_by_key(|&(_, fx, fy)| hidden(fx, fy))
        .map_or(SeriesLabelPosition::UpperRight, |(corner, _, _)| corner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_png_of_the_asked_size_with_dark_ink_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let charts = [Chart {
            title: "PSNR per frame",
            x_label: "frame",
            y_label: "PSNR (dB)",
            series: vec![
                (
                    "a".into(),
                    (0..50)
                        .map(|i| (i as f64, 15.0 + (i as f64 * 0.2).sin()))
                        .collect(),
                ),
                ("b".into(), (0..50).map(|i| (i as f64, 16.0)).collect()),
            ],
        }];
        charts_png(&path, &charts, 640, 240).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (640, 240));
        let dark = img.pixels().filter(|p| p.0.iter().all(|&v| v < 80)).count();
        // Axes, tick labels and the caption: text was drawn, not only lines.
        assert!(dark > 2000, "only {dark} dark pixels");
    }

    #[test]
    fn the_legend_goes_to_the_corner_that_hides_the_fewest_points() {
        let rising: Vec<(f64, f64)> = (0..100).map(|i| (f64::from(i), f64::from(i))).collect();
        let series = vec![("fit".to_string(), rising.clone())];
        let size = (0.3, 0.2);
        // A rising curve fills the lower left and the upper right.
        let corner = legend_corner(&series, (0.0, 99.0), (0.0, 99.0), size);
        assert!(
            matches!(corner, SeriesLabelPosition::UpperLeft),
            "{corner:?}"
        );
        let falling: Vec<(f64, f64)> = rising.iter().map(|&(x, y)| (x, 99.0 - y)).collect();
        let series = vec![("a".to_string(), falling)];
        let corner = legend_corner(&series, (0.0, 99.0), (0.0, 99.0), size);
        assert!(
            matches!(corner, SeriesLabelPosition::UpperRight),
            "{corner:?}"
        );
        // Longer names and more rows make a larger box.
        let (w1, h1) = legend_box(&[("a".into(), vec![])], 800, 400);
        let (w2, h2) = legend_box(
            &[("a longer name".into(), vec![]), ("b".into(), vec![])],
            800,
            400,
        );
        assert!(w2 > w1 && h2 > h1);
    }
}
