//! The `nircolor` command line: evaluate, colorize, train, benchmark, calibrate and run the daemon.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

mod cli;

use cli::bench::BenchCommand;
use cli::calibrate::CalibrateCommand;
use cli::{bench, calibrate, check, colorize, eval, eval_video, run, train};

#[derive(Parser)]
#[command(
    name = "nircolor",
    version,
    about = "Near-infrared to colour: evaluate, colorize, train, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score a model on a paired folder (nir/, rgb/, optional mask/): table, JSON, HTML report.
    Eval(eval::EvalArgs),
    /// Score a model on a paired NIR / colour clip as the daemon colours video: per-frame PSNR
    /// and Delta E, flicker, JSON and a plot.
    EvalVideo(eval_video::EvalVideoArgs),
    /// Colorize one NIR image or a folder of them.
    Colorize(colorize::ColorizeArgs),
    /// Fit a model on paired folders and write its weights file.
    Train(train::TrainArgs),
    /// Draw several training runs' validation PSNR against training hours on one chart (PNG),
    /// from their weights files' model cards.
    Curves {
        /// Where to write the chart.
        #[arg(long)]
        out: PathBuf,
        /// Weights files, as NAME=FILE or FILE (named by its stem).
        #[arg(required = true)]
        runs: Vec<String>,
    },
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// List V4L2 cameras with the formats and sizes they deliver.
    Devices,
    /// Run the daemon on a pipeline configuration until SIGTERM or Ctrl-C.
    Run(run::RunArgs),
    /// Validate a pipeline configuration without running it.
    Check {
        #[arg(long)]
        config: PathBuf,
        /// Print which cameras each shard of a fleet serves: I/N (this shard's) or N (all)
        #[arg(long)]
        shard: Option<String>,
    },
    /// Derive a camera's calibration file (calibration/*.toml).
    #[command(subcommand)]
    Calibrate(CalibrateCommand),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Plain lines for journald and log files; colour only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // The matches as well as the parsed values: `train --resume` asks which flags were typed.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match &cli.command {
        Command::Eval(a) => eval::run_eval(a),
        Command::EvalVideo(a) => eval_video::run_eval_video(a),
        Command::Colorize(a) => colorize::run_colorize(a),
        Command::Train(a) => {
            let typed = matches
                .subcommand_matches("train")
                .map(train::TypedFlags::from_matches)
                .unwrap_or_default();
            train::run_train(a, &typed)
        }
        Command::Bench(BenchCommand::Filter(a)) => bench::run_bench_filter(a),
        Command::Bench(BenchCommand::Model(a)) => bench::run_bench_model(a),
        Command::Bench(BenchCommand::Pipeline(a)) => bench::run_bench_pipeline(a),
        Command::Bench(BenchCommand::Soak(a)) => bench::run_bench_soak(a),
        Command::Bench(BenchCommand::HttpFlood(a)) => bench::run_bench_http_flood(a),
        Command::Check { config, shard } => check::run_check(config, shard.as_deref()),
        Command::Calibrate(CalibrateCommand::Flat(a)) => calibrate::run_calibrate_flat(a),
        Command::Calibrate(CalibrateCommand::Color(a)) => calibrate::run_calibrate_color(a),
        Command::Calibrate(CalibrateCommand::Reference(a)) => calibrate::run_calibrate_reference(a),
        Command::Run(a) => run::run_daemon(a),
        Command::Curves { out, runs } => train::run_curves(out, runs),
        Command::Devices => {
            print!(
                "{}",
                nircolor::capture::devices::report(&nircolor::capture::devices::list())
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line ("context: cause"), without a backtrace: users read it.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
