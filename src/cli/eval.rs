//! `nircolor eval`: score a model on a paired folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use nircolor::images::planes::Rgb;
use nircolor::images::read;
use nircolor::offline::data;
use nircolor::offline::eval::{self, Compare};
use nircolor::offline::report::Report;
use nircolor::reference;

use super::{progress, ModelArgs, SelectArgs};

#[derive(Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Paired folder with nir/ and rgb/ (optional mask/).
    #[arg(long)]
    pub(crate) data: PathBuf,
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    /// Write the results as JSON here.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write an HTML page with every picture and the table into this folder.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// Score another model's outputs on the same pairs: NAME=DIR, DIR holding one image per
    /// pair named by its stem (e.g. a published model's results). May be repeated.
    #[arg(long, value_name = "NAME=DIR", value_parser = parse_compare)]
    pub(crate) compare: Vec<Compare>,
    /// Colour with a day reference per pair: DIR holds one colour image per pair, named by its
    /// stem, taken from the same viewpoint at another time (`scripts/make-reference-pairs`
    /// makes them). The model colours what the reference does not show.
    #[arg(long, value_name = "DIR")]
    pub(crate) reference: Option<PathBuf>,
    /// With --reference, where the network's colour replaces the reference's: `test`, the
    /// daemon's disagreement test, or `objects`, exactly inside the pairs' `objects/` masks (a
    /// perfect test: the ceiling of `test` on the simulated protocol).
    #[arg(long, value_enum, default_value = "test", requires = "reference")]
    pub(crate) disagreement: Disagreement,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Disagreement {
    Test,
    Objects,
}

fn parse_compare(s: &str) -> Result<Compare, String> {
    match s.split_once('=') {
        Some((name, dir)) if !name.trim().is_empty() && !dir.is_empty() => Ok(Compare {
            name: name.trim().to_string(),
            dir: PathBuf::from(dir),
        }),
        _ => Err(format!(
            "'{s}' is not NAME=DIR (e.g. dct-rcan=../shared/data/published/dct-rcan)"
        )),
    }
}

pub(crate) fn run_eval(args: &EvalArgs) -> Result<()> {
    let model = args.model.load()?;
    let ds = args.select.open(&args.data)?;
    let report = args
        .report
        .as_deref()
        .map(|dir| {
            Report::create(dir).map(|r| {
                if args.reference.is_some() {
                    r.with_references()
                } else {
                    r
                }
            })
        })
        .transpose()?;
    let bar = progress(ds.len(), "evaluating");
    let mut report_err = None;
    let on_image = |pair: &data::Pair, out: &Rgb, _: &eval::ImageScore, cmp: &[image::RgbImage]| {
        if let Some(r) = &report {
            if let Err(e) = r.add(pair, out, cmp) {
                report_err.get_or_insert(e);
            }
        }
        bar.inc(1);
    };
    let result = match &args.reference {
        None => eval::evaluate_compared(model.as_ref(), &ds, &args.compare, on_image)?,
        Some(dir) => {
            let references = read::list_images(dir)?;
            let known = match args.disagreement {
                Disagreement::Test => None,
                Disagreement::Objects => Some(eval::ObjectMasks::open(&ds)?.with_context(|| {
                    format!(
                        "--disagreement objects: {} has no objects/ folder beside nir/ (scripts/make-reference-pairs writes one)",
                        args.data.display()
                    )
                })?),
            };
            let name = match known {
                None => format!("{}+reference", model.name()),
                Some(_) => format!("{}+reference(objects known)", model.name()),
            };
            let colorize = |pair: &data::Pair| -> Result<Rgb, eval::EvalError> {
                let bad = |why: String| eval::EvalError::Reference(why);
                let path = references.get(&pair.name).ok_or_else(|| {
                    bad(format!(
                        "--reference {}: no image named '{}' (png, jpg or tif); give one reference per evaluated pair",
                        dir.display(),
                        pair.name
                    ))
                })?;
                let reference = reference::read(path).map_err(|e| bad(e.to_string()))?;
                if let Some(r) = &report {
                    r.add_reference(pair, &reference)
                        .map_err(|e| bad(e.to_string()))?;
                }
                let network = model.colorize(&pair.nir);
                let out = match &known {
                    None => {
                        reference::colorize(&pair.nir, &reference, &network, pair.mask.as_deref())
                            .map(|c| c.rgb)
                    }
                    Some(masks) => {
                        reference::colorize_known(&pair.nir, &reference, &network, &masks.of(pair)?)
                    }
                };
                out.map_err(|e| bad(format!("{}: {e}", path.display())))
            };
            eval::evaluate_with(&name, colorize, &ds, &args.compare, on_image)?
        }
    };
    bar.finish_and_clear();
    if let Some(e) = report_err {
        return Err(e.into());
    }
    println!("model: {}\ndata:  {}\n", result.model, result.data);
    print!("{}\n{}", eval::table(&result), eval::error_split(&result));
    if let Some(t) = eval::objects_table(&result) {
        print!("\ninside and outside the marked objects:\n{t}");
    }
    if !result.compare.is_empty() {
        print!(
            "\nside by side (means over the same pairs):\n{}",
            eval::compare_table(&result)
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&result)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nJSON: {}", path.display());
    }
    if let Some(r) = &report {
        let page = r.finish(&result)?;
        println!("report: {}", page.display());
    }
    Ok(())
}
