//! The `tickq` command: train, quantize, evaluate, import, inspect and benchmark
//! tick-signal models. Run `tickq --help` or `tickq <command> --help`.
mod args;
mod commands;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;
use tickq_host::steps::PipelineError;

/// tickq: small market-signal networks from a workstation to the metal.
///
/// Train on trade ticks, calibrate and quantize to int8, export a checked blob,
/// and run it in the no_std integer core.
#[derive(Parser, Debug)]
#[command(name = "tickq", version, about, long_about = None, propagate_version = true, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bundled demo pipeline (host/pipelines/demo.toml): train, quantize (static and dynamic), gradual 80 % pruning,
    /// quantize again; writes the stages, a comparison, checkpoint/, model.blob and report.{md,json} into --out.
    Demo(commands::demo::DemoArgs),
    /// Train an f32 model described by an architecture file; writes a checkpoint directory.
    Train(commands::train::TrainArgs),
    /// Calibrate a checkpoint on its training split and export an int8 blob.
    Quantize(commands::quantize::QuantizeArgs),
    /// Evaluate a checkpoint and its blob on the test split; writes report.md and report.json.
    Eval(commands::eval::EvalArgs),
    /// Import a model trained elsewhere as a tickq checkpoint: an ONNX file, or PyTorch-style safetensors
    /// weights plus an architecture file.
    Import(commands::import::ImportArgs),
    /// Run a checkpoint (f32 logits) or a blob (int8 logits, scores and signals through tickq-core) on input
    /// vectors from a file; with labels prints the accuracy, with --reference the argmax agreement and the
    /// max and mean absolute error. See docs/BYO_MODEL.md.
    Run(commands::run::RunArgs),
    /// Show a blob's layers, shapes, sizes, arena, CRC and metadata.
    Inspect(commands::inspect::InspectArgs),
    /// Measure single-sample tick-to-signal latency of a blob through tickq-core.
    Bench(commands::bench::BenchArgs),
    /// Replay a trade file through the device path (the blob's feature spec and model in tickq-core, trade by
    /// trade) and check every signal and int8 logit against the host pipeline; prints the mismatches (0 is the
    /// only passing answer, anything else exits with 1) and the raw-trade-to-signal latency percentiles.
    Replay(commands::replay::ReplayArgs),
    /// Export a blob for a device: raw bytes, a C header or a Rust source, with optional test vectors.
    Export(commands::export::ExportArgs),
    /// Prune a checkpoint (unstructured, global, structured or N:M), optionally gradually with fine-tuning;
    /// prints the accuracy after every step and the sparsity statistics, and writes a new checkpoint.
    #[command(after_long_help = commands::prune::PRUNE_EXAMPLES)]
    Prune(commands::prune::PruneArgs),
    /// Distill a trained teacher checkpoint into a small student (an architecture file, or a checkpoint that
    /// may be pruned); writes the student checkpoint, and with --compare compares it with the student trained alone.
    Distill(commands::distill::DistillArgs),
    /// Print pruning statistics (zero weights, globally and per layer) of a checkpoint directory or a blob file.
    Stats(commands::stats::StatsArgs),
    /// Per-layer sensitivity: quantize (or prune) one layer at a time, the rest f32, and list the accuracy
    /// change worst first, with the calibrated ranges and the fraction of values each range clips.
    #[command(after_long_help = commands::sensitivity::SENSITIVITY_EXAMPLES)]
    Sensitivity(commands::sensitivity::SensitivityArgs),
    /// Run the stages of a pipeline config (train, prune, distill, quantize, export), skipping unchanged ones,
    /// and compare them in comparison.md / comparison.json with charts. See docs/PIPELINE.md.
    Pipeline(commands::pipeline::PipelineArgs),
    /// Replay an order-by-order (L3) orders file, with an optional trades file, into top-N book snapshots and
    /// print the summary: rows, snapshot orders kept and dropped, readings, snapshots, trades, spread. See
    /// docs/DATA.md "Order-by-order books".
    BookStats(commands::book_stats::BookStatsArgs),
}

/// The exit codes, for `tickq --help`; [`tickq_host::error::ErrorKind`] decides between 1 and 2.
const EXIT_CODES: &str = "Exit codes:
  0  success
  1  internal failure: an output could not be written, the GPU failed, or a bug in tickq
  2  bad input: a file, config, option or data you gave is wrong, missing or does not fit";

fn main() -> ExitCode {
    // clap exits with 2 for a bad command line itself, and 0 for --help and --version.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", tickq_host::error::report(&e));
            ExitCode::from(e.kind().exit_code())
        }
    }
}

/// Writes a line to stdout; a closed pipe (`tickq inspect x | head`) is not an error.
fn out(line: &str) -> Result<(), PipelineError> {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(PipelineError::Io),
    }
}

fn progress(line: &str) {
    eprintln!("{line}");
}

fn run(cli: Cli) -> Result<(), PipelineError> {
    match cli.command {
        Command::Demo(a) => commands::demo::run(a),
        Command::Train(a) => commands::train::run(a),
        Command::Quantize(a) => commands::quantize::run(a),
        Command::Eval(a) => commands::eval::run(a),
        Command::Import(a) => commands::import::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Bench(a) => commands::bench::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Replay(a) => commands::replay::run(a),
        Command::Prune(a) => commands::prune::run(a),
        Command::Stats(a) => commands::stats::run(a),
        Command::Sensitivity(a) => commands::sensitivity::run(a),
        Command::Distill(a) => commands::distill::run(a),
        Command::Pipeline(a) => commands::pipeline::run(a),
        Command::BookStats(a) => commands::book_stats::run(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::any::TypeId;

    /// Every numeric option of every subcommand: its help gives the valid range, and a negative value reaches the
    /// range check (instead of clap's "unexpected argument").
    #[test]
    fn every_numeric_option_names_its_range_and_takes_negative_numbers() {
        fn walk(cmd: &clap::Command, path: &str, seen: &mut Vec<String>) {
            let numeric = [
                TypeId::of::<usize>(),
                TypeId::of::<u64>(),
                TypeId::of::<f32>(),
                TypeId::of::<f64>(),
                TypeId::of::<i64>(),
                TypeId::of::<Vec<usize>>(),
                TypeId::of::<Vec<i64>>(),
            ];
            for arg in cmd.get_arguments() {
                let id = arg.get_value_parser().type_id();
                if !numeric.iter().any(|t| id == *t) {
                    continue;
                }
                let name = format!("{path} --{}", arg.get_long().unwrap_or("?"));
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(help.contains(". Valid: "), "{name}: no range in `{help}`");
                assert!(
                    arg.is_allow_negative_numbers_set(),
                    "{name}: -5 would be an unexpected argument"
                );
                seen.push(name);
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), seen);
            }
        }
        let mut seen = Vec::new();
        walk(&Cli::command(), "tickq", &mut seen);
        for expected in [
            "tickq train --epochs",
            "tickq train --horizon",
            "tickq train --dead-band",
            "tickq train --dead-band-bps",
            "tickq train --time-steps",
            "tickq train --return-lags-trades",
            "tickq train --return-lags-ms",
            "tickq train --range-windows-trades",
            "tickq train --tick-size",
            "tickq train --size-unit",
            "tickq train --session-gap-ms",
            "tickq train --capacity",
            "tickq import --session-gap-ms",
            "tickq train --lr",
            "tickq train --patience",
            "tickq train --momentum",
            "tickq bench --calls",
            "tickq eval --latency-calls",
            "tickq export --vectors",
            "tickq prune --steps",
            "tickq prune --batch-size",
            "tickq distill --alpha",
            "tickq quantize --calibration-samples",
            "tickq sensitivity --amount",
        ] {
            assert!(
                seen.iter().any(|s| s == expected),
                "{expected} is not a checked numeric option: {seen:?}"
            );
        }
    }
}
