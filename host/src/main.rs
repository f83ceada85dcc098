//! The `tickq` command: train, quantize, evaluate, import, inspect and benchmark
//! tick-signal models. Run `tickq --help` or `tickq <command> --help`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tickq_host::data::{self, DatasetConfig};
use tickq_host::device::DeviceChoice;
use tickq_host::fsutil::write_atomic;
use tickq_host::gpu_train::TrainDevice;
use tickq_host::limits::{self, Count, RangeError, Real};
use tickq_host::model::{Architecture, OptimizerConfig};
use tickq_host::paths::{check_output_dir, check_output_file};
use tickq_host::pipeline::{self, EncodeOptions, PipelineError, Target, WeightFormat};
use tickq_host::prune::{
    ModelPruner, Norm, PolynomialSchedule, PruneMethod, PruningPlan, PruningStatistics,
};
use tickq_host::quant::QuantConfig;
use tickq_host::quant::config::RawQuantConfig;
use tickq_host::report::RangeRow;
use tickq_host::stages;
use tickq_host::train::{ClassWeights, TrainConfig};

/// tickq: small market-signal networks from a workstation to the metal.
///
/// Train on trade ticks, calibrate and quantize to int8, export a checked blob,
/// and run it in the no_std integer core.
#[derive(Parser, Debug)]
#[command(name = "tickq", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the bundled demo pipeline (host/pipelines/demo.toml): train, quantize (static and dynamic), gradual 80 % pruning,
    /// quantize again; writes the stages, a comparison, checkpoint/, model.blob and report.{md,json} into --out.
    Demo(DemoArgs),
    /// Train an f32 model described by an architecture file; writes a checkpoint directory.
    Train(TrainArgs),
    /// Calibrate a checkpoint on its training split and export an int8 blob.
    Quantize(QuantizeArgs),
    /// Evaluate a checkpoint and its blob on the test split; writes report.md and report.json.
    Eval(EvalArgs),
    /// Import PyTorch-style safetensors weights plus an architecture file as a tickq checkpoint.
    Import(ImportArgs),
    /// Show a blob's layers, shapes, sizes, arena, CRC and metadata.
    Inspect(InspectArgs),
    /// Measure single-sample tick-to-signal latency of a blob through tickq-core.
    Bench(BenchArgs),
    /// Export a blob for a device: raw bytes, a C header or a Rust source, with optional test vectors.
    Export(ExportArgs),
    /// Prune a checkpoint (unstructured, global, structured or N:M), optionally gradually with fine-tuning;
    /// prints the accuracy after every step and the sparsity statistics, and writes a new checkpoint.
    #[command(after_long_help = PRUNE_EXAMPLES)]
    Prune(PruneArgs),
    /// Distill a trained teacher checkpoint into a small student (an architecture file, or a checkpoint that
    /// may be pruned); writes the student checkpoint, and with --compare compares it with the student trained alone.
    Distill(DistillArgs),
    /// Print pruning statistics (zero weights, globally and per layer) of a checkpoint directory or a blob file.
    Stats(StatsArgs),
    /// Per-layer sensitivity: quantize (or prune) one layer at a time, the rest f32, and list the accuracy
    /// change worst first, with the calibrated ranges and the fraction of values each range clips.
    #[command(after_long_help = SENSITIVITY_EXAMPLES)]
    Sensitivity(SensitivityArgs),
    /// Run the stages of a pipeline config (train, prune, distill, quantize, export), skipping unchanged ones,
    /// and compare them in comparison.md / comparison.json with charts. See docs/PIPELINE.md.
    Pipeline(PipelineArgs),
}

const PRUNE_EXAMPLES: &str = "\
Examples:
  tickq prune ckpt --method unstructured --amount 0.5 --layers fc1,fc2 --out ckpt-50
  tickq prune ckpt --method global --amount 0.9 --schedule gradual --steps 4 --fine-tune-epochs 2 --out ckpt-90
  tickq prune ckpt --method structured --amount 0.25 --dim 0 --norm 2 --fine-tune-epochs 2 --out ckpt-s25
  tickq prune ckpt --method nm --n 2 --m 4 --layers fc2,fc3 --remove --out ckpt-24

Masks: unstructured, global and nm pruning keep a 0/1 mask per pruned weight; the checkpoint stores them
as fc1.weight_orig + fc1.weight_mask (the names torch.nn.utils.prune uses), and later fine-tuning keeps
the pruned weights at exactly zero. --remove bakes the masks in and drops them. Structured pruning needs
no masks: it removes the channels, so the checkpoint's layers really are smaller.
See docs/PRUNING.md.";

/// Data and dataset options shared by the commands that build samples.
#[derive(Args, Debug, Clone)]
struct DataArgs {
    /// Trade CSV (timestamp, price, size[, side]); defaults to the bundled ES ticks.
    #[arg(long, value_name = "CSV")]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn path(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(data::default_data_path)
    }
}

/// A clap value parser for a whole number in `range`: `-5`, `0` or `1e12` outside it get an error that names the
/// range, rather than clap's "unexpected argument".
fn whole(
    range: Count,
) -> impl Fn(&str) -> Result<usize, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse_usize(text)
}

/// [`whole`] for a `u64`.
fn whole_u64(
    range: Count,
) -> impl Fn(&str) -> Result<u64, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse(text)
}

/// A clap value parser for a real number in `range`, as an `f32`.
fn real(range: Real) -> impl Fn(&str) -> Result<f32, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse_f32(text)
}

/// A clap value parser for a real number in `range`, as an `f64`.
fn real_f64(
    range: Real,
) -> impl Fn(&str) -> Result<f64, RangeError> + Clone + Send + Sync + 'static {
    move |text| range.parse(text)
}

/// The help of a numeric option: what it is, then its valid range, written from the same constant the value
/// parser checks.
fn ranged(what: &str, range: impl std::fmt::Display) -> String {
    format!("{what}. Valid: {range}")
}

/// Labelling and windowing options for `train` and `demo`.
#[derive(Args, Debug, Clone)]
struct DatasetArgs {
    #[arg(long, value_name = "TRADES", allow_negative_numbers = true, value_parser = whole(limits::HORIZON),
          help = ranged("Label horizon: the price move over the next H trades is classified [default: 100]", limits::HORIZON))]
    horizon: Option<usize>,
    #[arg(long, value_name = "PRICE", allow_negative_numbers = true, value_parser = real_f64(limits::DEAD_BAND),
          help = ranged("Dead band in price units: moves within +-band are labelled flat [default: 0.125]", limits::DEAD_BAND))]
    dead_band: Option<f64>,
    #[arg(long, value_name = "T", allow_negative_numbers = true, value_parser = whole(limits::TIME_STEPS),
          help = ranged("Window length: how many past ticks form one sample (1 = current tick only) [default: 1]", limits::TIME_STEPS))]
    time_steps: Option<usize>,
}

impl DatasetArgs {
    fn config(&self) -> DatasetConfig {
        let mut cfg = DatasetConfig::default();
        if let Some(h) = self.horizon {
            cfg.labels.horizon = h;
        }
        if let Some(b) = self.dead_band {
            cfg.labels.dead_band = b;
        }
        if let Some(t) = self.time_steps {
            cfg.time_steps = t;
        }
        cfg
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum OptimizerArg {
    Adam,
    Sgd,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ClassWeightArg {
    None,
    Balanced,
}

/// `--batch-size`, shared by the commands that train or fine-tune.
#[derive(Args, Debug, Clone)]
struct BatchSizeArg {
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(limits::BATCH_SIZE),
          help = ranged("Mini-batch size (training, or fine-tuning after pruning) [default: 256]", limits::BATCH_SIZE))]
    batch_size: Option<usize>,
}

/// `--lr`, shared by the commands that train or fine-tune.
#[derive(Args, Debug, Clone)]
struct LrArg {
    #[arg(long, value_name = "LR", allow_negative_numbers = true, value_parser = real(limits::LR),
          help = ranged("Learning rate [default: 1e-3 for Adam (and pruning's fine-tuning), 1e-2 for SGD]", limits::LR))]
    lr: Option<f32>,
}

/// Training options.
#[derive(Args, Debug, Clone)]
struct TrainOpts {
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(limits::EPOCHS),
          help = ranged("Maximum number of epochs [default: 20]", limits::EPOCHS))]
    epochs: Option<usize>,
    #[command(flatten)]
    batch_size: BatchSizeArg,
    /// Optimizer.
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    #[command(flatten)]
    lr: LrArg,
    #[arg(long, allow_negative_numbers = true, value_parser = real(limits::MOMENTUM),
          help = ranged("SGD momentum, with --optimizer sgd [default: 0.9]", limits::MOMENTUM))]
    momentum: Option<f32>,
    #[arg(long, value_name = "EPOCHS", allow_negative_numbers = true, value_parser = whole(limits::PATIENCE),
          help = ranged("Early stopping: epochs without a better validation loss before stopping (0: never) [default: 4]", limits::PATIENCE))]
    patience: Option<usize>,
    #[arg(long, allow_negative_numbers = true, value_parser = whole_u64(limits::SEED),
          help = ranged("Seed for initialization and shuffling; the same seed gives identical weights [default: 7]", limits::SEED))]
    seed: Option<u64>,
    /// Class weights in the cross-entropy loss.
    #[arg(long, value_enum)]
    class_weights: Option<ClassWeightArg>,
}

impl TrainOpts {
    fn config(&self, base: TrainConfig) -> Result<TrainConfig, PipelineError> {
        let mut cfg = base;
        if let Some(e) = self.epochs {
            cfg.epochs = e;
        }
        if let Some(b) = self.batch_size.batch_size {
            cfg.batch_size = b;
        }
        if let Some(p) = self.patience {
            cfg.patience = p;
        }
        if let Some(s) = self.seed {
            cfg.seed = s;
        }
        if self.momentum.is_some() && !matches!(self.optimizer, Some(OptimizerArg::Sgd)) {
            return Err(PipelineError::Mismatch(
                "--momentum applies only to --optimizer sgd".into(),
            ));
        }
        let lr = self.lr.lr;
        match self.optimizer {
            Some(OptimizerArg::Sgd) => {
                cfg.optimizer =
                    OptimizerConfig::sgd(lr.unwrap_or(1e-2), self.momentum.unwrap_or(0.9));
            }
            Some(OptimizerArg::Adam) => cfg.optimizer = OptimizerConfig::adam(lr.unwrap_or(1e-3)),
            None => {
                if let Some(new_lr) = lr {
                    match &mut cfg.optimizer {
                        OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => {
                            *lr = new_lr
                        }
                    }
                }
            }
        }
        match self.class_weights {
            Some(ClassWeightArg::None) => cfg.class_weights = ClassWeights::None,
            Some(ClassWeightArg::Balanced) => cfg.class_weights = ClassWeights::Balanced,
            None => {}
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Quantization options (override the config file).
#[derive(Args, Debug, Clone)]
struct QuantOpts {
    /// Quantization config file (TOML: backend, dtype, reduce_range, observer, percentile,
    /// averaging_constant, calibration_samples).
    #[arg(long, value_name = "TOML")]
    quant_config: Option<PathBuf>,
    /// Backend: x86 (alias fbgemm), arm (alias qnnpack) or fpga (power-of-two scales).
    #[arg(long)]
    backend: Option<String>,
    /// Activation dtype: qint8 or quint8 (the same 256-level grid).
    #[arg(long)]
    dtype: Option<String>,
    /// 7-bit activations (-64..=63), as fbgemm's reduce_range.
    #[arg(long)]
    reduce_range: bool,
    /// Activation observer: minmax, moving_average_minmax, percentile, mse or kl.
    #[arg(long)]
    observer: Option<String>,
    #[arg(long, allow_negative_numbers = true, value_parser = real_f64(limits::PERCENTILE),
          help = ranged("Percentile for the percentile observer [default: 99.99]", limits::PERCENTILE))]
    percentile: Option<f64>,
    #[arg(long, allow_negative_numbers = true, value_parser = real_f64(limits::AVERAGING_CONSTANT),
          help = ranged("Averaging constant of the moving-average observer [default: 0.01]", limits::AVERAGING_CONSTANT))]
    averaging_constant: Option<f64>,
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole(limits::CALIBRATION_SAMPLES),
          help = ranged("Training samples used for calibration (at most the training split is used) [default: 4096]", limits::CALIBRATION_SAMPLES))]
    calibration_samples: Option<usize>,
    /// Weight encoding in the blob: auto (per layer, the fastest estimate on --target among
    /// formats smaller than its dense layout), dense (the target's dense layout: dense-dot on
    /// x86-64 and aarch64, dense-dsp for Cortex-M4 Dense layers, blocked otherwise), smallest
    /// (per layer, the fewest bytes), blocked (16-channel blocks of input pairs, format 0),
    /// dense-dot (16-channel blocks of 4-input groups, for vpdpbusd / vpmaddwd / sdot),
    /// dense-dsp (Dense layers for the Cortex-M4's SMLAD), sparse (by output channel),
    /// columns (Dense only, by input: skips inputs at their zero point, e.g. ReLU zeros),
    /// packed (columns with bit-packed entries: smallest, slower) or nm (N:4 semi-structured).
    #[arg(
        long,
        default_value = "auto",
        value_name = "auto|dense|smallest|blocked|dense-dot|dense-dsp|sparse|columns|packed|nm"
    )]
    weight_format: WeightFormat,
    /// The machine the blob is for: its dense layout, and what --weight-format auto counts as
    /// fast. Default: this machine (x86-64-v4 with AVX-512 VNNI, x86-64-v3 with AVX2, else
    /// x86-64; aarch64 on aarch64).
    #[arg(
        long,
        value_name = "x86-64-v4|x86-64-v3|x86-64|aarch64|cortex-m4|cortex-m0|riscv32"
    )]
    target: Option<Target>,
}

impl QuantOpts {
    fn config(&self) -> Result<QuantConfig, PipelineError> {
        let file = match &self.quant_config {
            Some(p) => RawQuantConfig::load(p)?,
            None => RawQuantConfig::default(),
        };
        let cli = RawQuantConfig {
            backend: self.backend.clone(),
            dtype: self.dtype.clone(),
            reduce_range: self.reduce_range.then_some(true),
            observer: self.observer.clone(),
            percentile: self.percentile,
            averaging_constant: self.averaging_constant,
            calibration_samples: self.calibration_samples,
        };
        Ok(file.overridden_by(cli).resolve()?)
    }

    fn encode_options(&self) -> EncodeOptions {
        EncodeOptions {
            weight_format: self.weight_format,
            target: self.target.unwrap_or_else(Target::native),
        }
    }
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Output directory: the pipeline's stage directories and comparison, plus checkpoint/, model.blob and
    /// report.{md,json} of the trained model and its default int8 blob.
    #[arg(long, default_value = "tickq-demo")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Recompute every stage, even those a previous run left unchanged.
    #[arg(long)]
    force: bool,
    /// Where the stages train and run their whole-split int8 evaluation: auto takes a hardware GPU when there
    /// is one; gpu takes any adapter, software Vulkan too. GPU training agrees with the CPU within rounding.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
}

/// `--device` of the commands that train.
#[derive(Args, Debug)]
struct TrainDeviceArg {
    /// Where training runs: auto (a hardware GPU when wgpu finds one and the GPU trainer can run the model,
    /// else the CPU), cpu, or gpu (any adapter, software Vulkan too; an error without one). One stderr line says
    /// which. GPU training follows the same seeded order from the same initial weights and agrees with the
    /// CPU within rounding, not bit for bit; use cpu for runs that must be bit-identical on every machine.
    #[arg(long = "device", value_enum, default_value = "auto")]
    device: DeviceChoice,
}

impl TrainDeviceArg {
    fn resolve(&self) -> Result<TrainDevice, PipelineError> {
        Ok(TrainDevice::resolve(self.device)?)
    }
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Architecture file (TOML or JSON); see docs/MODELS.md.
    #[arg(long, value_name = "FILE")]
    arch: PathBuf,
    /// Checkpoint directory to write (model.safetensors, arch.toml, preprocess.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Resume an interrupted run from the training state kept in OUT/train-state.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    dataset: DatasetArgs,
    #[command(flatten)]
    train: TrainOpts,
    #[command(flatten)]
    device: TrainDeviceArg,
}

#[derive(Args, Debug)]
struct QuantizeArgs {
    /// Checkpoint directory.
    checkpoint: PathBuf,
    /// Blob file to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    quant: QuantOpts,
    /// static: calibrated activation scales (the quantization options apply); dynamic: no calibration, activation
    /// exponents chosen per inference (MLPs of Dense + ReLU/ReLU6 only; see docs/ARITHMETIC.md).
    #[arg(long, value_enum, default_value = "static")]
    mode: QuantMode,
}

/// How `tickq quantize` quantizes activations.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum QuantMode {
    /// Calibrated per-tensor scales.
    Static,
    /// Power-of-two exponents chosen at run time.
    Dynamic,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Checkpoint directory.
    checkpoint: PathBuf,
    /// Blob exported from that checkpoint.
    #[arg(long, value_name = "FILE")]
    blob: PathBuf,
    /// Directory for report.md and report.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_name = "N", default_value_t = 200_000, allow_negative_numbers = true,
          value_parser = whole(limits::LATENCY_CALLS),
          help = ranged("Single-sample calls timed for the latency percentiles", limits::LATENCY_CALLS))]
    latency_calls: usize,
    /// Where the int8 logits of the test split are computed (bit-exact on either): auto takes a hardware GPU
    /// when there is one; gpu takes any adapter, software Vulkan too.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
}

#[derive(Args, Debug)]
struct ImportArgs {
    /// safetensors file with PyTorch state_dict names (fc1.weight as [out, in], conv1.weight as [out, in, k]).
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Architecture file describing the same network.
    #[arg(long, value_name = "FILE")]
    arch: PathBuf,
    /// Checkpoint directory to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// preprocess.json describing the standardization the model was trained with;
    /// without it, the default dataset settings are fitted on --data's training split.
    #[arg(long, value_name = "FILE")]
    preprocess: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args, Debug)]
struct InspectArgs {
    /// Blob file.
    blob: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Blob file.
    blob: PathBuf,
    #[arg(long, value_name = "N", default_value_t = 200_000, allow_negative_numbers = true,
          value_parser = whole(limits::LATENCY_CALLS),
          help = ranged("Number of timed single-sample calls", limits::LATENCY_CALLS))]
    calls: usize,
    /// Trade CSV whose features feed the benchmark (defaults to the bundled ES ticks);
    /// when its feature count does not match the blob, seeded random inputs are used.
    #[arg(long, value_name = "CSV")]
    data: Option<PathBuf>,
    /// The kernel backend to run: generic, sse2, avx2, avx512-vnni (x86-64), neon,
    /// neon-dot (aarch64). Default: the fastest this machine has (what a device loading the
    /// blob picks).
    #[arg(long, value_name = "NAME")]
    backend: Option<tickq_core::Backend>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum ExportFormat {
    Blob,
    CHeader,
    Rust,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum VectorInputArg {
    /// int8 for a static blob, f32 for a dynamic one.
    Auto,
    /// int8 inputs, for Session::run_quantized (static blobs only).
    Int8,
    /// f32 inputs, for Session::run.
    F32,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Blob file.
    blob: PathBuf,
    /// Output format: the raw blob, a C header (aligned array plus length and arena macros), or a Rust
    /// source file that embeds the blob (written beside it as .blob) with include_bytes!.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Output file [default: model.blob, model.h or model.rs].
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
    /// C symbol prefix for the header [default: the model name, sanitized].
    #[arg(long)]
    symbol: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true,
          value_parser = whole(limits::VECTORS),
          help = ranged("Also write N test vectors from the data's test split (with the int8 logits tickq-core computes) \
                         to OUT with the extension .tqv; at most the test split's samples", limits::VECTORS))]
    vectors: usize,
    /// Test vector inputs: int8 (the blob's own input quantizer applied, for Session::run_quantized; static blobs
    /// only, since a dynamic blob's int8 input carries a per-sample exponent), f32 (for Session::run), or auto (int8
    /// for a static blob, f32 for a dynamic one).
    #[arg(long, value_enum, default_value = "auto")]
    vector_input: VectorInputArg,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum PruneMethodArg {
    /// L1 magnitude, ranked per layer.
    Unstructured,
    /// L1 magnitude with one threshold across all dense and conv1d layers.
    Global,
    /// Remove whole channels or neurons ranked by --norm; the model shrinks.
    Structured,
    /// N:M: keep the --n largest of every --m consecutive input weights.
    Nm,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum ScheduleArg {
    /// Prune to --amount in one step.
    OneShot,
    /// Polynomial decay from --initial to --amount over --steps steps, fine-tuning after each.
    Gradual,
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// Checkpoint directory to prune (with the preprocess.json that `tickq train` writes).
    checkpoint: PathBuf,
    /// Pruning method.
    #[arg(long, value_enum)]
    method: PruneMethodArg,
    #[arg(long, required_if_eq_any([("method", "unstructured"), ("method", "global"), ("method", "structured")]),
          allow_negative_numbers = true, value_parser = real(limits::SPARSITY),
          help = ranged("Target: the fraction of weights that are zero afterwards, counting earlier pruning \
                         (unstructured per layer, global over all layers), or the fraction of each layer's channels \
                         removed (structured); the final sparsity with --schedule gradual. Not used by nm", limits::SPARSITY))]
    amount: Option<f32>,
    /// Comma-separated layer names, such as fc1,fc2. Default: every dense and conv1d layer (structured: every
    /// layer that can lose channels along --dim). Global pruning always ranks all layers together.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    layers: Option<Vec<String>>,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = whole(limits::STRUCTURED_DIM),
          help = ranged("Structured: 0 removes output channels (neurons) of the named layers and the next layer's \
                         matching inputs; 1 removes their input channels and the previous layer's matching outputs",
                        limits::STRUCTURED_DIM))]
    dim: usize,
    /// Structured: the norm that ranks channels: 1, 2 or inf.
    #[arg(long, default_value = "1")]
    norm: Norm,
    #[arg(long, default_value_t = 2, allow_negative_numbers = true, value_parser = whole(limits::NM),
          help = ranged("N:M: weights kept in each group, at most --m", limits::NM))]
    n: usize,
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = whole(limits::NM),
          help = ranged("N:M: group size, in consecutive inputs of a row (conv1d rows are tap-major: the inputs of tap 0, \
                         then those of tap 1, ...)", limits::NM))]
    m: usize,
    /// one-shot, or gradual: Zhu & Gupta's s_t = s_f + (s_i - s_f)(1 - t/N)^3 from --initial (s_i) to --amount (s_f).
    #[arg(long, value_enum, default_value = "one-shot")]
    schedule: ScheduleArg,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = real(limits::SPARSITY),
          help = ranged("Gradual: the initial sparsity s_i, at most --amount", limits::SPARSITY))]
    initial: f32,
    #[arg(long, default_value_t = 4, allow_negative_numbers = true, value_parser = whole(limits::PRUNE_STEPS),
          help = ranged("Gradual: the number of pruning steps N", limits::PRUNE_STEPS))]
    steps: usize,
    #[arg(long, value_name = "E", allow_negative_numbers = true, value_parser = whole(limits::FINE_TUNE_EPOCHS),
          help = ranged("Fine-tuning epochs after each pruning step [default: 2 with --schedule gradual, 0 otherwise]",
                        limits::FINE_TUNE_EPOCHS))]
    fine_tune_epochs: Option<usize>,
    /// Fine-tuning learning rate (Adam) and mini-batch size.
    #[command(flatten)]
    lr: LrArg,
    #[command(flatten)]
    batch_size: BatchSizeArg,
    /// Bake the masks into the weights and drop them before saving (PyTorch's prune.remove). Without it the
    /// checkpoint keeps its masks; structured pruning removes channels and needs none.
    #[arg(long)]
    remove: bool,
    /// Checkpoint directory to write.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Args, Debug)]
struct StatsArgs {
    /// A checkpoint directory (counts the zeros of weight x mask) or a blob file (counts the zero int8
    /// weights the blob stores, after tickq-core validates it).
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DistillArgs {
    /// Teacher checkpoint directory (with the preprocess.json that `tickq train` writes); its data settings and
    /// standardization rebuild the training, validation and test splits.
    #[arg(long, value_name = "CKPT")]
    teacher: PathBuf,
    /// Student: an architecture file (a fresh student initialized with --seed) or a checkpoint directory, such as
    /// a pruned model whose masks stay in place.
    #[arg(long, value_name = "ARCH_OR_CKPT")]
    student: PathBuf,
    /// Checkpoint directory to write (with the teacher's preprocess.json).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Resume an interrupted run from the training state kept in OUT/train-state.
    #[arg(long)]
    resume: bool,
    #[arg(long, default_value_t = 4.0, allow_negative_numbers = true, value_parser = real(limits::TEMPERATURE),
          help = ranged("Softmax temperature T of the soft term", limits::TEMPERATURE))]
    temperature: f32,
    #[arg(long, default_value_t = 0.7, allow_negative_numbers = true, value_parser = real(limits::ALPHA),
          help = ranged("Weight alpha of the soft term T^2 * KL; the cross-entropy on the labels gets 1 - alpha", limits::ALPHA))]
    alpha: f32,
    /// Also train the same student alone (same initial weights, seed, epochs and optimizer), print test accuracy
    /// and macro-F1 of teacher, student alone and student distilled, and write OUT/distill-comparison.json.
    #[arg(long)]
    compare: bool,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    train: TrainOpts,
    #[command(flatten)]
    device: TrainDeviceArg,
}

/// One row of `tickq distill --compare`.
#[derive(serde::Serialize)]
struct DistillRow {
    model: String,
    parameters: usize,
    nonzero_parameters: usize,
    accuracy: f64,
    macro_f1: f64,
    best_epoch: Option<usize>,
    epochs_run: Option<usize>,
}

/// `OUT/distill-comparison.json`.
#[derive(serde::Serialize)]
struct DistillComparison {
    test_samples: usize,
    temperature: f32,
    alpha: f32,
    train: TrainConfig,
    teacher: DistillRow,
    student_alone: DistillRow,
    student_distilled: DistillRow,
}

fn distill(a: DistillArgs) -> Result<(), PipelineError> {
    use tickq_host::distill::{DistillConfig, DistillError};
    use tickq_host::model::Sequential;
    let kd_err = |e: DistillError| match e {
        DistillError::Train(e) => PipelineError::Train(e),
        DistillError::Model(e) => PipelineError::Model(e),
        other => PipelineError::Mismatch(other.to_string()),
    };
    let kd = DistillConfig {
        temperature: a.temperature,
        alpha: a.alpha,
    };
    kd.validate().map_err(kd_err)?;
    let cfg = a.train.config(TrainConfig::default())?;
    check_output_dir(&a.out, "the student checkpoint")?;
    let (teacher, data, pre) = load_with_data(&a.teacher, &a.data)?;
    // The distilled student keeps a resumable state as `tickq train` does; the student trained alone does not.
    let state_dir = a.out.join("train-state");
    if !a.resume {
        tickq_host::fsutil::remove_dir_atomic(&state_dir)?;
    }
    let distill_cfg = TrainConfig {
        checkpoint_dir: Some(state_dir),
        ..cfg.clone()
    };
    let student = if a.student.is_dir() {
        let (model, student_pre) = tickq_host::checkpoint::load_checkpoint(&a.student)?;
        if student_pre.is_some_and(|p| Some(p) != serde_json::to_value(&pre).ok()) {
            progress(&format!(
                "warning: {} was prepared differently from the teacher; the student trains on the teacher's data",
                a.student.display()
            ));
        }
        model
    } else {
        Sequential::new(Architecture::load(&a.student)?, cfg.seed)?
    };
    tickq_host::distill::check_pair(&teacher, &student).map_err(kd_err)?;
    let train_x = data.normalized(data.splits.train.x.view());
    let val_x = data.normalized(data.splits.validation.x.view());
    let (train_y, val_y) = (&data.splits.train.y, &data.splits.validation.y);
    progress(&format!(
        "distilling `{}` ({} parameters) into `{}` ({} parameters{}) on {} samples, T {} alpha {}",
        teacher.arch.name,
        teacher.num_parameters(),
        student.arch.name,
        student.num_parameters(),
        if student.has_masks() { ", masked" } else { "" },
        train_y.len(),
        kd.temperature,
        kd.alpha
    ));
    let device = a.device.resolve()?;
    let mut distilled = student.clone();
    let history = tickq_host::distill::distill_train_on(
        &device,
        &teacher,
        &mut distilled,
        train_x.view(),
        train_y,
        val_x.view(),
        val_y,
        &kd,
        &distill_cfg,
        &mut |e| progress(&pipeline::format_epoch(e)),
    )
    .map_err(kd_err)?;
    pipeline::save_checkpoint(&a.out, &distilled, &pre)?;
    progress(&format!(
        "best epoch {} of {}",
        history.best_epoch,
        history.epochs.len()
    ));
    if a.compare {
        progress("training the student alone for comparison");
        let mut alone = student;
        let alone_history = tickq_host::train::train_on(
            &device,
            &mut alone,
            train_x.view(),
            train_y,
            val_x.view(),
            val_y,
            &cfg,
            &mut |e| progress(&pipeline::format_epoch(e)),
        )?;
        let test = &data.splits.test;
        let test_x = data.normalized(test.x.view());
        let row = |name: &str, m: &Sequential, h: Option<&tickq_host::train::TrainHistory>| {
            let metrics = tickq_host::eval::Metrics::compute(
                &m.predict(test_x.view()),
                &test.y,
                &test.label_names,
            );
            DistillRow {
                model: name.to_string(),
                parameters: m.num_parameters(),
                nonzero_parameters: m
                    .state_dict()
                    .iter()
                    .flat_map(|t| &t.2)
                    .filter(|v| **v != 0.0)
                    .count(),
                accuracy: metrics.accuracy,
                macro_f1: metrics.macro_f1,
                best_epoch: h.map(|h| h.best_epoch),
                epochs_run: h.map(|h| h.epochs.len()),
            }
        };
        let cmp = DistillComparison {
            test_samples: test.y.len(),
            temperature: kd.temperature,
            alpha: kd.alpha,
            train: cfg.clone(),
            teacher: row(&teacher.arch.name, &teacher, None),
            student_alone: row(&alone.arch.name, &alone, Some(&alone_history)),
            student_distilled: row(&distilled.arch.name, &distilled, Some(&history)),
        };
        out(&format!(
            "{:<18} {:>10} {:>10} {:>9}",
            "model", "non-zero", "test acc", "macro-F1"
        ))?;
        for (label, r) in [
            ("teacher", &cmp.teacher),
            ("student alone", &cmp.student_alone),
            ("student distilled", &cmp.student_distilled),
        ] {
            out(&format!(
                "{label:<18} {:>10} {:>9.2} % {:>9.4}",
                r.nonzero_parameters,
                100.0 * r.accuracy,
                r.macro_f1
            ))?;
        }
        let path = a.out.join("distill-comparison.json");
        let mut text = serde_json::to_string_pretty(&cmp)
            .map_err(|e| PipelineError::Mismatch(e.to_string()))?;
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        out(&format!("wrote {}", path.display()))?;
    }
    out(&format!("wrote checkpoint {}", a.out.display()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
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
        Command::Demo(a) => demo(a),
        Command::Train(a) => train(a),
        Command::Quantize(a) => quantize(a),
        Command::Eval(a) => eval(a),
        Command::Import(a) => import(a),
        Command::Inspect(a) => inspect(a),
        Command::Bench(a) => bench(a),
        Command::Export(a) => export(a),
        Command::Prune(a) => prune(a),
        Command::Stats(a) => stats(a),
        Command::Sensitivity(a) => sensitivity(a),
        Command::Distill(a) => distill(a),
        Command::Pipeline(a) => run_pipeline(a),
    }
}

fn demo(a: DemoArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "the demo's stages, checkpoint, blob and report")?;
    let opts = stages::RunOptions {
        out: a.out.clone(),
        force: a.force,
        progress: true,
        device: a.device.resolve()?,
    };
    let outputs = stages::run_demo(a.data.data.as_deref(), &opts, &mut |l| {
        let _ = out(l);
    })
    .map_err(|e| PipelineError::Mismatch(e.to_string()))?;
    let mut written = outputs.run.files.clone();
    written.extend([outputs.checkpoint, outputs.blob]);
    written.extend(outputs.report);
    for path in &written {
        out(&format!("wrote {}", path.display()))?;
    }
    Ok(())
}

fn train(a: TrainArgs) -> Result<(), PipelineError> {
    let arch = Architecture::load(&a.arch)?;
    let mut cfg = a.train.config(TrainConfig::default())?;
    check_output_dir(&a.out, "the checkpoint")?;
    let path = a.data.path();
    progress(&format!("reading {}", path.display()));
    let data = pipeline::prepare_data(&path, &a.dataset.config(), None)?;
    let state_dir = a.out.join("train-state");
    if a.resume {
        cfg.checkpoint_dir = Some(state_dir.clone());
    } else {
        tickq_host::fsutil::remove_dir_atomic(&state_dir)?;
        cfg.checkpoint_dir = Some(state_dir);
    }
    progress(&format!(
        "training `{}` on {} samples ({} validation)",
        arch.name,
        data.splits.train.y.len(),
        data.splits.validation.y.len()
    ));
    let device = a.device.resolve()?;
    let (model, history) = pipeline::train_model_on(&device, arch, &data, &cfg, &mut |e| {
        progress(&pipeline::format_epoch(e))
    })?;
    pipeline::save_checkpoint(&a.out, &model, &data.preprocess())?;
    progress(&format!(
        "best epoch {} of {}",
        history.best_epoch,
        history.epochs.len()
    ));
    out(&format!("wrote checkpoint {}", a.out.display()))
}

type Loaded = (
    tickq_host::model::Sequential,
    pipeline::PreparedData,
    pipeline::Preprocess,
);

fn load_with_data(checkpoint: &Path, data: &DataArgs) -> Result<Loaded, PipelineError> {
    let (model, pre) = pipeline::load_checkpoint(checkpoint)?;
    let path = data.path();
    progress(&format!("reading {}", path.display()));
    let (prepared, same) = pipeline::prepare_data_for(&pre, &path)?;
    if !same {
        progress(&format!(
            "warning: {} is not the file the checkpoint was trained on (sha256 differs)",
            path.display()
        ));
    }
    pipeline::check_arch_fits(&model.arch, &prepared)?;
    Ok((model, prepared, pre))
}

fn quantize(a: QuantizeArgs) -> Result<(), PipelineError> {
    let cfg = a.quant.config()?;
    check_output_file(&a.out, "the blob")?;
    let (model, data, _) = load_with_data(&a.checkpoint, &a.data)?;
    if a.mode == QuantMode::Dynamic {
        progress("dynamic quantization: no calibration");
        let q = pipeline::quantize_model_dynamic(&model, &data)?;
        write_atomic(&a.out, &q.blob)?;
        // A dynamic blob has no calibration settings; a sidecar left by an earlier static run would misreport them.
        let sidecar = pipeline::QuantSidecar::path_for(&a.out);
        if sidecar.exists() {
            std::fs::remove_file(&sidecar)?;
        }
        return out(&format!(
            "wrote {} ({} bytes, dynamic)",
            a.out.display(),
            q.blob.len()
        ));
    }
    progress(&format!(
        "calibrating on {} training samples ({})",
        cfg.calibration_samples.min(data.splits.train.y.len()),
        cfg.observer
    ));
    let q = pipeline::quantize_model_with(&model, &data, &cfg, &a.quant.encode_options())?;
    for w in &q.warnings {
        progress(&format!("warning: {w}"));
    }
    write_atomic(&a.out, &q.blob)?;
    let sidecar = pipeline::QuantSidecar {
        quantization: pipeline::quant_summary(
            &cfg,
            cfg.calibration_samples.min(data.splits.train.y.len()),
        ),
        ranges: q.ranges.iter().map(RangeRow::from).collect(),
    };
    sidecar.write(&a.out)?;
    out(&format!(
        "wrote {} ({} bytes) and {}",
        a.out.display(),
        q.blob.len(),
        pipeline::QuantSidecar::path_for(&a.out).display()
    ))
}

fn eval(a: EvalArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "report.md and report.json")?;
    let (model, data, pre) = load_with_data(&a.checkpoint, &a.data)?;
    let blob = read_blob(&a.blob)?;
    pipeline::check_blob_file(&a.blob, &blob, &a.checkpoint, &model, &pre)?;
    let sidecar = pipeline::QuantSidecar::read(&a.blob)?;
    let (summary, ranges) = match sidecar {
        Some(s) => (s.quantization, s.ranges),
        None => {
            progress(&format!(
                "note: {} not found; the report will not list quantization settings",
                pipeline::QuantSidecar::path_for(&a.blob).display()
            ));
            (pipeline::unknown_quant_summary(), Vec::new())
        }
    };
    progress(&format!(
        "evaluating on {} test samples and timing {} calls",
        data.splits.test.y.len(),
        a.latency_calls
    ));
    let device = a.device.resolve()?;
    let report = pipeline::evaluate_on(
        &device,
        &model,
        &blob,
        &data,
        summary,
        ranges,
        a.latency_calls,
    )
    .map_err(|e| match e {
        PipelineError::Blob { error, .. } => PipelineError::Blob {
            path: a.blob.display().to_string(),
            error,
        },
        other => other,
    })?;
    if let Some(ctx) = device.gpu() {
        progress(&format!(
            "GPU memory: {} KiB held by tickq buffers at peak",
            ctx.peak_bytes_on_gpu().div_ceil(1024)
        ));
    }
    report.write(&a.out)?;
    out(&format!(
        "f32 accuracy {:.2} %, int8 accuracy {:.2} %, agreement {:.2} %, p50 {:.0} ns; wrote {}",
        100.0 * report.float.accuracy,
        100.0 * report.int8.accuracy,
        100.0 * report.int8.agreement,
        report.latency_ns.p50,
        a.out.join("report.md").display()
    ))
}

fn import(a: ImportArgs) -> Result<(), PipelineError> {
    check_output_dir(&a.out, "the checkpoint")?;
    let model = tickq_host::checkpoint::import_safetensors(&a.weights, &a.arch)?;
    let pre = match &a.preprocess {
        Some(p) => pipeline::Preprocess::read(p, &model.arch)?,
        None => {
            let dataset = DatasetConfig {
                time_steps: model.arch.input.time_steps,
                ..DatasetConfig::default()
            };
            let path = a.data.path();
            progress(&format!(
                "no --preprocess given: fitting standardization on the training split of {}",
                path.display()
            ));
            let data = pipeline::prepare_data(&path, &dataset, None)?;
            pipeline::check_arch_fits(&model.arch, &data)?;
            data.preprocess()
        }
    };
    pipeline::save_checkpoint(&a.out, &model, &pre)?;
    out(&format!(
        "imported {} parameters into {}",
        model.num_parameters(),
        a.out.display()
    ))
}

/// Reads a blob file with [`limits::read_blob_file`], so a device or a huge file is not read into memory.
fn read_blob(path: &Path) -> Result<Vec<u8>, PipelineError> {
    limits::read_blob_file(path).map_err(|e| {
        PipelineError::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    })
}

fn inspect(a: InspectArgs) -> Result<(), PipelineError> {
    let bytes = read_blob(&a.blob)?;
    let model = tickq_core::Model::load(&bytes).map_err(|error| PipelineError::Blob {
        path: a.blob.display().to_string(),
        error,
    })?;
    let info = pipeline::inspect_blob(&model);
    if a.json {
        out(&serde_json::to_string_pretty(&info)
            .map_err(|e| PipelineError::Mismatch(e.to_string()))?)
    } else {
        out(&info.to_text())
    }
}

fn bench(a: BenchArgs) -> Result<(), PipelineError> {
    let bytes = read_blob(&a.blob)?;
    let mut model = tickq_core::Model::load(&bytes).map_err(|error| PipelineError::Blob {
        path: a.blob.display().to_string(),
        error,
    })?;
    if let Some(backend) = a.backend {
        model
            .set_backend(backend)
            .map_err(|e| PipelineError::Mismatch(format!("--backend {backend}: {e}")))?;
    }
    let path = a.data.clone().unwrap_or_else(data::default_data_path);
    let (inputs, source) = pipeline::bench_inputs(&model, &path)?;
    progress(&format!(
        "timing {} single-sample calls on {source}",
        a.calls
    ));
    let stats = tickq_host::eval::measure_latency(&model, inputs.view(), a.calls);
    if a.json {
        out(&serde_json::to_string_pretty(&stats)
            .map_err(|e| PipelineError::Mismatch(e.to_string()))?)
    } else {
        out(&format!(
            "{}: {} calls on the {} backend, latency p50 {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns, mean {:.1} ns (timer overhead {:.0} ns subtracted)",
            a.blob.display(),
            stats.calls,
            stats.backend,
            stats.p50,
            stats.p99,
            stats.p999,
            stats.mean,
            stats.timer_overhead
        ))
    }
}

fn export(a: ExportArgs) -> Result<(), PipelineError> {
    use tickq_host::export::{self, Format, VectorInput};
    let (format, default_out) = match a.format {
        ExportFormat::Blob => (Format::Blob, "model.blob"),
        ExportFormat::CHeader => (Format::CHeader, "model.h"),
        ExportFormat::Rust => (Format::Rust, "model.rs"),
    };
    let opts = export::ExportOptions {
        blob: a.blob.clone(),
        format,
        out: a.out.clone().unwrap_or_else(|| default_out.into()),
        symbol: a.symbol.clone(),
        vectors: a.vectors,
        vector_input: match a.vector_input {
            VectorInputArg::Auto => None,
            VectorInputArg::Int8 => Some(VectorInput::Int8),
            VectorInputArg::F32 => Some(VectorInput::F32),
        },
        data: a.data.path(),
    };
    check_output_file(&opts.out, "the export")?;
    let written = export::run_export(&opts).map_err(|e| PipelineError::Mismatch(e.to_string()))?;
    for file in &written.files {
        out(&format!("wrote {}", file.display()))?;
    }
    Ok(())
}

fn prune(a: PruneArgs) -> Result<(), PipelineError> {
    let method = match a.method {
        PruneMethodArg::Unstructured => PruneMethod::Unstructured {
            layers: a.layers.clone(),
        },
        PruneMethodArg::Global => PruneMethod::Global,
        PruneMethodArg::Structured => PruneMethod::Structured {
            layers: a.layers.clone(),
            dim: a.dim,
            norm: a.norm,
        },
        PruneMethodArg::Nm => PruneMethod::NM {
            n: a.n,
            m: a.m,
            layers: a.layers.clone(),
        },
    };
    let amount = a.amount.unwrap_or(0.0);
    let schedule = match a.schedule {
        ScheduleArg::OneShot => PolynomialSchedule::one_shot(amount)?,
        ScheduleArg::Gradual => PolynomialSchedule::new(a.initial, amount, a.steps)?,
    };
    if a.method == PruneMethodArg::Nm && a.n > a.m {
        return Err(PipelineError::Mismatch(format!(
            "--n {} is above --m {}: N:M pruning keeps n of every m weights",
            a.n, a.m
        )));
    }
    let epochs = a.fine_tune_epochs.unwrap_or(match a.schedule {
        ScheduleArg::Gradual => 2,
        ScheduleArg::OneShot => 0,
    });
    let plan = PruningPlan {
        method,
        schedule,
        fine_tune: TrainConfig {
            epochs,
            batch_size: a.batch_size.batch_size.unwrap_or(256),
            optimizer: OptimizerConfig::adam(a.lr.lr.unwrap_or(1e-3)),
            patience: 0,
            ..TrainConfig::default()
        },
    };
    check_output_dir(&a.out, "the pruned checkpoint")?;
    let (mut model, data, pre) = load_with_data(&a.checkpoint, &a.data)?;
    progress(&format!(
        "pruning `{}` ({}, {} fine-tune epochs per step)",
        model.arch.name,
        plan.method.name(),
        epochs
    ));
    let steps = pipeline::prune_model(
        &mut model,
        &data,
        &plan,
        &mut |r| progress(&pipeline::format_step(r)),
        &mut |e| progress(&format!("  {}", pipeline::format_epoch(e))),
    )?;
    if a.remove {
        ModelPruner::new(&mut model).remove();
    }
    pipeline::save_checkpoint(&a.out, &model, &pre)?;
    for r in &steps {
        out(&pipeline::format_step(r))?;
    }
    out("")?;
    out(&PruningStatistics::of_model(&model).to_text())?;
    out(&format!(
        "wrote checkpoint {}{}",
        a.out.display(),
        if model.has_masks() {
            " (with masks)"
        } else {
            ""
        }
    ))
}

fn stats(a: StatsArgs) -> Result<(), PipelineError> {
    let stats = if a.model.is_dir() {
        let (model, _) = tickq_host::checkpoint::load_checkpoint(&a.model)?;
        PruningStatistics::of_model(&model)
    } else {
        let bytes = read_blob(&a.model)?;
        PruningStatistics::of_blob(&bytes)
            .map_err(|e| PipelineError::Mismatch(format!("{}: {e}", a.model.display())))?
    };
    if a.json {
        out(&serde_json::to_string_pretty(&stats)
            .map_err(|e| PipelineError::Mismatch(e.to_string()))?)
    } else {
        let source = if a.model.is_dir() {
            "checkpoint (f32 weight x mask)"
        } else {
            "blob (int8 weights)"
        };
        out(&format!("model        {} {source}", a.model.display()))?;
        out(&stats.to_text())
    }
}

const SENSITIVITY_EXAMPLES: &str = "\
Examples:
  tickq sensitivity ckpt
  tickq sensitivity ckpt --mode both --amount 0.5 --split test
  tickq sensitivity ckpt --backend fpga --observer percentile --json --out sensitivity.json

Quantize mode fake-quantizes one tensor at a time in f32 (the input quantizer; each dense/conv1d layer's
per-channel int8 weights and its int8 output, with a following relu/relu6/clamp fused; each pool or table
output) with exactly the parameters `tickq quantize` would export, after checking that the whole model
quantizes. Prune mode zeroes --amount of one layer's weights at a time (L1 unstructured, no fine-tuning).
Rows are scored on --split and sorted worst first. See docs/TROUBLESHOOTING.md.";

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum SensitivityMode {
    /// Quantize one tensor at a time (and print the range report).
    Quantize,
    /// Prune one layer at a time.
    Prune,
    /// Both.
    Both,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum SplitArg {
    Validation,
    Test,
}

#[derive(Args, Debug)]
struct SensitivityArgs {
    /// Checkpoint directory.
    checkpoint: PathBuf,
    /// What to apply one layer at a time.
    #[arg(long, value_enum, default_value = "quantize")]
    mode: SensitivityMode,
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true, value_parser = real(limits::SPARSITY),
          help = ranged("Prune mode: the fraction of each layer's weights that is zero in its row", limits::SPARSITY))]
    amount: f32,
    /// The split the rows are scored on (the range report's held-out clipping always uses the test split).
    #[arg(long, value_enum, default_value = "validation")]
    split: SplitArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the report (JSON with --json, text otherwise) to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    quant: QuantOpts,
}

fn sensitivity(a: SensitivityArgs) -> Result<(), PipelineError> {
    use tickq_host::quant::sensitivity::{self as sens, EvalSet};
    let config = a.quant.config()?;
    if let Some(path) = &a.out {
        check_output_file(path, "the report")?;
    }
    let (model, data, _) = load_with_data(&a.checkpoint, &a.data)?;
    let (split_name, split) = match a.split {
        SplitArg::Validation => ("validation", &data.splits.validation),
        SplitArg::Test => ("test", &data.splits.test),
    };
    let x = data.normalized(split.x.view());
    let eval = EvalSet {
        x: x.view(),
        y: &split.y,
        labels: &split.label_names,
    };
    let mut report = sens::SensitivityReport {
        model: model.arch.name.clone(),
        split: split_name.to_string(),
        samples: split.y.len(),
        float: sens::Score {
            accuracy: 0.0,
            macro_f1: 0.0,
        },
        quantization: None,
        pruning: None,
    };
    if a.mode != SensitivityMode::Prune {
        let calibration = pipeline::calibration_set(&data, &config);
        progress(&format!(
            "quantizing one tensor at a time ({} calibration samples, {}), scoring on {} {split_name} samples",
            calibration.nrows(),
            config.observer,
            split.y.len()
        ));
        let q = sens::quantization_sensitivity(
            &model,
            calibration.view(),
            &pipeline::export_info(&model, &data),
            &config,
            &a.quant.encode_options(),
            &eval,
        )?;
        let test_x = data.normalized(data.splits.test.x.view());
        report.float = q.float;
        report.quantization = Some(sens::QuantSection {
            settings: pipeline::quant_summary(&config, calibration.nrows()),
            ranges: sens::range_rows(&model, &q.quantized, test_x.view()),
            warnings: q.quantized.warnings.clone(),
            layers: q.layers,
        });
    }
    if a.mode != SensitivityMode::Quantize {
        progress(&format!(
            "pruning one layer at a time to {} % zeros",
            100.0 * a.amount
        ));
        let p = sens::pruning_sensitivity(&model, a.amount, &eval)?;
        report.float = p.float;
        report.pruning = Some(sens::PruneSection {
            amount: p.amount,
            layers: p.layers,
        });
    }
    let text = if a.json {
        serde_json::to_string_pretty(&report).map_err(|e| PipelineError::Mismatch(e.to_string()))?
    } else {
        report.to_text()
    };
    if let Some(path) = &a.out {
        write_atomic(path, text.as_bytes())?;
    }
    out(text.trim_end())
}

#[derive(Args, Debug)]
struct PipelineArgs {
    /// Pipeline config (TOML): a [data] table and [[stages]]; see docs/PIPELINE.md.
    config: PathBuf,
    /// Output directory: one directory per stage, comparison.{md,json} and the charts.
    #[arg(long, default_value = "tickq-pipeline")]
    out: PathBuf,
    /// Recompute every stage, even those a previous run left unchanged.
    #[arg(long)]
    force: bool,
    /// Where the stages train and run their whole-split int8 evaluation: auto takes a hardware GPU when there
    /// is one; gpu takes any adapter, software Vulkan too. GPU training agrees with the CPU within rounding.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
}

fn run_pipeline(a: PipelineArgs) -> Result<(), PipelineError> {
    let failed = |e: stages::StagesError| PipelineError::Mismatch(e.to_string());
    let cfg = stages::PipelineConfig::load(&a.config).map_err(failed)?;
    check_output_dir(&a.out, "the stage directories and the comparison")?;
    let opts = stages::RunOptions {
        out: a.out,
        force: a.force,
        progress: true,
        device: a.device.resolve()?,
    };
    let run = stages::run_pipeline(&cfg, &opts, &mut |l| {
        let _ = out(l);
    })
    .map_err(failed)?;
    for path in &run.files {
        out(&format!("wrote {}", path.display()))?;
    }
    Ok(())
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
