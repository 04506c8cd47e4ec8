//! `nircolor colorize`: colour one NIR image or a folder of them.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use nircolor::images::read;

use super::{progress, ModelArgs};

#[derive(Args)]
pub(crate) struct ColorizeArgs {
    /// A NIR image, or a folder of them.
    pub(crate) input: PathBuf,
    /// Output image (its extension picks PNG, JPEG or TIFF), or a folder for a folder input.
    #[arg(short, long)]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

pub(crate) fn run_colorize(args: &ColorizeArgs) -> Result<()> {
    let model = args.model.load()?;
    let jobs: Vec<(PathBuf, PathBuf)> = if args.input.is_dir() {
        let images = read::list_images(&args.input)?;
        if images.is_empty() {
            bail!("{} holds no PNG, JPEG or TIFF images", args.input.display());
        }
        std::fs::create_dir_all(&args.output)
            .with_context(|| format!("creating {}", args.output.display()))?;
        images
            .into_iter()
            .map(|(stem, path)| (path, args.output.join(format!("{stem}.png"))))
            .collect()
    } else if args.output.is_dir() {
        let stem = args
            .input
            .file_stem()
            .context("input has no file name")?
            .to_string_lossy()
            .to_string();
        vec![(args.input.clone(), args.output.join(format!("{stem}.png")))]
    } else {
        vec![(args.input.clone(), args.output.clone())]
    };
    let bar = progress(jobs.len(), "colorizing");
    for (input, output) in &jobs {
        let nir = read::read_nir(input)?;
        model
            .colorize(&nir)
            .to_rgb8()
            .save(output)
            .with_context(|| format!("writing {}", output.display()))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "wrote {} image(s) with {} to {}",
        jobs.len(),
        model.name(),
        args.output.display()
    );
    Ok(())
}
