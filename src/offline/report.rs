//! The HTML evaluation report: a picture grid (NIR | the day reference, when one is in use |
//! output | each compared model | ground truth for every image) and the metrics tables, so a
//! person can look rather than read.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::images::planes::Rgb;
use crate::offline::data::Pair;
use crate::offline::eval::{Evaluation, ImageScore};
use crate::offline::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report into {path}: {why}")]
    Write { path: PathBuf, why: String },
}

/// A report being written into a folder: images as they are evaluated, the page at the end.
pub struct Report {
    dir: PathBuf,
    /// Each pair was coloured with a day reference (`eval --reference`): a column shows it.
    references: bool,
}

impl Report {
    pub fn create(dir: &Path) -> Result<Report, ReportError> {
        let images = dir.join("images");
        fs::create_dir_all(&images).map_err(|e| write_err(&images, e))?;
        Ok(Report {
            dir: dir.to_path_buf(),
            references: false,
        })
    }

    /// A report with a column for each pair's day reference ([`Report::add_reference`]).
    pub fn with_references(mut self) -> Report {
        self.references = true;
        self
    }

    /// Saves the day reference one pair was coloured with.
    pub fn add_reference(&self, pair: &Pair, reference: &Rgb) -> Result<(), ReportError> {
        let path = self
            .dir
            .join("images")
            .join(format!("{}_ref.png", pair.name));
        reference
            .to_rgb8()
            .save(&path)
            .map_err(|e| ReportError::Write {
                path,
                why: e.to_string(),
            })
    }

    /// Saves the pictures of one evaluated pair: NIR, output, the compared models' outputs (in
    /// the order of [`Evaluation::compare`]) and the truth.
    pub fn add(
        &self,
        pair: &Pair,
        output: &Rgb,
        compared: &[image::RgbImage],
    ) -> Result<(), ReportError> {
        let save = |suffix: &str, img: image::DynamicImage| {
            let path = self
                .dir
                .join("images")
                .join(format!("{}_{suffix}.png", pair.name));
            img.save(&path).map_err(|e| ReportError::Write {
                path,
                why: e.to_string(),
            })
        };
        save("nir", pair.nir.to_luma8().into())?;
        save("out", output.to_rgb8().into())?;
        for (i, img) in compared.iter().enumerate() {
            save(&format!("cmp{i}"), img.clone().into())?;
        }
        save("gt", pair.rgb.clone().into())
    }

    /// Writes `index.html` and returns its path.
    pub fn finish(&self, e: &Evaluation) -> Result<PathBuf, ReportError> {
        let page = self.dir.join("index.html");
        fs::write(&page, html(e, self.references)).map_err(|err| write_err(&page, err))?;
        Ok(page)
    }
}

fn write_err(path: &Path, e: io::Error) -> ReportError {
    ReportError::Write {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn cells(m: &Metrics, ms: f64) -> String {
    let v = m.values();
    format!(
        "<td>{:.3}</td><td>{:.4}</td><td>{:.3}</td><td>{:.2}</td><td>{:.2}</td><td>{:.3}</td><td>{:.3}</td><td>{:.2}</td>",
        v[0], v[1], v[2], v[3], v[4], v[5], v[6], ms
    )
}

fn html(e: &Evaluation, references: bool) -> String {
    let mut s = String::new();
    let fixed = 3 + usize::from(references);
    let (model, data) = (escape(&e.model), escape(&e.data));
    let _ = write!(
        s,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>nircolor: {model} on {data}</title>\n<style>\
body{{font-family:sans-serif;margin:1.5em;background:#fafafa}} table{{border-collapse:collapse}}\
td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}} td:first-child,th:first-child{{text-align:left}}\
.grid{{display:grid;grid-template-columns:repeat({columns},1fr);gap:6px;max-width:{max_width}px}} .grid img{{width:100%}}\
.grid figure{{margin:0}} figcaption{{font-size:85%;color:#444}} h2{{margin-top:1.5em}}</style></head><body>\n\
<h1>{model}</h1><p>data: <code>{data}</code> &middot; {n} images &middot; mean PSNR {psnr:.3} dB, SSIM {ssim:.4}, \
&Delta;E2000 {de:.3}, {ms:.2} ms per image</p>\n<h2>Pictures</h2><p>NIR input | {reference}output | {compared}ground truth</p><div class=\"grid\">\n",
        columns = fixed + e.compare.len(),
        max_width = 470 * (fixed + e.compare.len()),
        reference = if references { "day reference | " } else { "" },
        compared = e
            .compare
            .keys()
            .map(|k| format!("{} | ", escape(k)))
            .collect::<String>(),
        n = e.images.len(),
        psnr = e.mean.metrics.psnr,
        ssim = e.mean.metrics.ssim,
        de = e.mean.metrics.delta_e2000,
        ms = e.mean.ms_per_image,
    );
    for (i, ImageScore { name, metrics, .. }) in e.images.iter().enumerate() {
        let n = escape(name);
        let scored = |m: &Metrics| format!(", PSNR {:.2} dB, SSIM {:.3}", m.psnr, m.ssim);
        let mut columns = vec![("nir".to_string(), "NIR".to_string(), String::new())];
        if references {
            columns.push(("ref".into(), "day reference".into(), String::new()));
        }
        columns.push(("out".into(), "output".into(), scored(metrics)));
        for (k, (model, c)) in e.compare.iter().enumerate() {
            columns.push((
                format!("cmp{k}"),
                escape(model),
                scored(&c.images[i].metrics),
            ));
        }
        columns.push(("gt".into(), "ground truth".into(), String::new()));
        for (suffix, caption, extra) in columns {
            let _ = writeln!(
                s,
                "<figure><img src=\"images/{n}_{suffix}.png\" alt=\"{n} {caption}\" loading=\"lazy\"><figcaption>{n}: {caption}{extra}</figcaption></figure>"
            );
        }
    }
    s += "</div>\n<h2>Metrics</h2><table><tr><th>image</th><th>PSNR</th><th>SSIM</th><th>AE&deg;</th><th>RMSE</th>\
<th>MAE</th><th>&Delta;E2000</th><th>&Delta;E76</th><th>ms</th></tr>\n";
    for img in &e.images {
        let _ = writeln!(
            s,
            "<tr><td>{}</td>{}</tr>",
            escape(&img.name),
            cells(&img.metrics, img.ms)
        );
    }
    let _ = writeln!(
        s,
        "<tr><th>mean</th>{}</tr></table>",
        cells(&e.mean.metrics, e.mean.ms_per_image)
    );
    if !e.compare.is_empty() {
        s += "<h2>Side by side</h2><p>Means over the same pairs; the compared models' outputs were read from disk, not run here.</p>\
<table><tr><th>model</th><th>PSNR</th><th>SSIM</th><th>AE&deg;</th><th>RMSE</th><th>MAE</th><th>&Delta;E2000</th><th>&Delta;E76</th><th>ms</th><th>colourfulness</th></tr>\n";
        for (name, m) in e.side_by_side() {
            let _ = writeln!(
                s,
                "<tr><td>{}</td>{}<td>{:.1}</td></tr>",
                escape(name),
                cells(&m.metrics, m.ms_per_image),
                m.split.colourfulness
            );
        }
        let _ = writeln!(
            s,
            "<tr><td>ground truth</td><td colspan=\"8\"></td><td>{:.1}</td></tr></table>",
            e.mean.split.truth_colourfulness
        );
    }
    s += "</body></html>\n";
    s
}
