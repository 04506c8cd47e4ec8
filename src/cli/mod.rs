//! The command line's pieces, one file per subcommand; here the options several share
//! (model, pair selection) and small helpers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use nircolor::detail::GuidedFilter;
use nircolor::models::colorizer::{self, Colorizer, Post};
use nircolor::offline::data::{self, Dataset};

pub(crate) mod bench;
pub(crate) mod calibrate;
pub(crate) mod check;
pub(crate) mod colorize;
pub(crate) mod eval;
pub(crate) mod eval_video;
pub(crate) mod run;
pub(crate) mod train;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PostArg {
    /// The colorizer's output as it is.
    None,
    /// He et al.'s guided filter with the NIR as guide (detail transfer).
    Guided,
    /// Colorize at --scale times the size, then the fast guided filter restores full
    /// resolution from the NIR (the daemon's detail stage).
    FastGuided,
    /// ColorNet's BFWLS: the NIR's detail (minus its bilateral and WLS bases) added to the WLS
    /// base of the output's luma, chroma kept. For offline work: about 1.5 s per 1024x680 image.
    Bfwls,
}

#[derive(Args)]
pub(crate) struct ModelArgs {
    /// A weights file, or a built-in colorizer: default (the real-time network), identity,
    /// linear, l3.
    #[arg(long, default_value = "default")]
    pub(crate) model: String,
    /// Post-processing after the colorizer.
    #[arg(long, value_enum, default_value_t = PostArg::None)]
    pub(crate) post: PostArg,
    /// Guided filter radius in full-resolution pixels (with --post guided or fast-guided).
    #[arg(long, default_value_t = nircolor::detail::STILL_RADIUS)]
    pub(crate) radius: usize,
    /// Guided filter regularisation on [0, 1] data (with --post guided or fast-guided).
    #[arg(long, default_value_t = nircolor::detail::STILL_EPS)]
    pub(crate) eps: f32,
    /// Size factor the colorizer runs at with --post fast-guided, in (0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub(crate) scale: f32,
    /// A network computes its layers in bf16 (weights and output stay f32): faster on CPUs
    /// with AVX-512 BF16; `nircolor bench model --bf16` measures it.
    #[arg(long)]
    pub(crate) bf16: bool,
}

impl ModelArgs {
    pub(crate) fn load(&self) -> Result<Box<dyn Colorizer>> {
        nircolor::models::colorizer::validate_post(self.eps, self.scale)?;
        nircolor::models::net::set_bf16_inference(self.bf16);
        let inner = nircolor::models::load(&self.model)
            .with_context(|| format!("loading model '{}'", self.model))?;
        let filter = GuidedFilter {
            radius: self.radius,
            eps: self.eps,
        };
        let post = match self.post {
            PostArg::None => Post::None,
            PostArg::Guided => Post::Guided(filter),
            PostArg::FastGuided => Post::FastGuided {
                filter,
                scale: self.scale,
            },
            PostArg::Bfwls => Post::Bfwls(nircolor::detail::bfwls::Bfwls::default()),
        };
        Ok(colorizer::with_post(inner, post))
    }
}

#[derive(Args)]
pub(crate) struct SelectArgs {
    /// Use only the pairs whose stems this file lists (one per line, # comments).
    #[arg(long, value_name = "LIST")]
    pub(crate) only: Option<PathBuf>,
    /// Skip the pairs whose stems this file lists; may be repeated.
    #[arg(long, value_name = "LIST")]
    pub(crate) exclude: Vec<PathBuf>,
}

impl SelectArgs {
    pub(crate) fn open(&self, dir: &Path) -> Result<Dataset> {
        let only = self.only.as_deref().map(data::read_stem_list).transpose()?;
        let mut exclude = HashSet::new();
        for list in &self.exclude {
            exclude.extend(data::read_stem_list(list)?);
        }
        let ds = Dataset::open(dir)?;
        Ok(ds.select(only.as_ref(), &exclude)?)
    }
}

pub(crate) fn progress(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The exact command line, so a model card says how to reproduce its file.
pub(crate) fn command_line() -> String {
    std::iter::once("nircolor".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Applies `--threads` to libtorch.
pub(crate) fn set_threads(threads: Option<i32>) -> Result<()> {
    if let Some(t) = threads {
        if t < 1 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(t);
    }
    Ok(())
}

pub(crate) fn parse_size(s: &str) -> Result<(usize, usize)> {
    let parsed = s
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
    match parsed {
        Some((w, h)) if w > 0 && h > 0 && w <= 8192 && h <= 8192 => Ok((w, h)),
        _ => bail!("size '{s}' is not WIDTHxHEIGHT with sides from 1 to 8192, e.g. 640x480"),
    }
}
