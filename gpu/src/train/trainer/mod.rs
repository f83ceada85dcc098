//! [`GpuTrainer`]: whole training steps on the GPU.
//!
//! - [`place`](mod@place): the model's shapes and the geometry of each layer's kernels;
//! - [`buffers`]: every GPU buffer the trainer owns, as named fields (per layer and per step);
//! - [`data`]: the training and validation sets, resident or streamed in chunks;
//! - [`plan`]: one step's dispatches (gather, forward, loss, backward, optimizer), built from the typed
//!   uniform blocks of [`crate::train::params`];
//! - [`epoch`]: replaying the plans over an epoch, the validation pass and the traced step;
//! - [`stats`]: what comes back.

mod buffers;
mod data;
mod epoch;
mod place;
mod plan;
mod stats;

use std::collections::HashMap;

use self::buffers::{Network, ParamBufs, Part, StepBufs, TensorPair};
use self::data::DataSet;
use self::place::{Shape, place};
pub use self::stats::{EpochStats, PassStats, StepTrace};
use super::desc::{LossDesc, ModelDesc, OptimizerDesc, ParamTensors, TrainGpuError};
use super::kernels::{Kernels, Op};
use crate::buffers::BufferPool;
use crate::context::GpuContext;

type Result<T> = std::result::Result<T, TrainGpuError>;

/// The weight and the bias of one dense or conv1d layer, row-major.
pub type LayerParams = (Vec<f32>, Vec<f32>);

/// Steps recorded into one command buffer before it is submitted, so a long epoch does not become one
/// huge submission (drivers may time out on those).
const STEPS_PER_SUBMIT: usize = 64;

/// Pool name of the per-step optimizer constants, re-uploaded every epoch.
const STEP_TABLE: &str = "train.table";

/// Pool name of the per-class loss weights.
const CLASS_WEIGHTS: &str = "train.class_w";

/// Which data set a plan runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    /// Training steps over the training set.
    Train,
    /// Evaluation over the validation set.
    Eval,
}

impl Phase {
    /// The name of the phase's data set in errors and buffer names.
    fn set_name(self) -> &'static str {
        match self {
            Phase::Train => "train",
            Phase::Eval => "val",
        }
    }
}

/// Trains a [`ModelDesc`] on the GPU.
///
/// Parameters, optimizer state and both data sets live on the GPU; an epoch uploads only the shuffled order
/// (and the optimizer's per-step bias corrections), records every step's kernels (gather the batch, forward,
/// loss, backward, optimizer) into command buffers, evaluates the validation set and reads back four numbers
/// per pass. Parameters come back only when asked ([`GpuTrainer::params`]).
/// Every sum runs in a fixed order (no float atomics), so the same inputs give bit-identical results on one
/// adapter.
#[derive(Debug)]
pub struct GpuTrainer {
    ctx: GpuContext,
    kernels: Kernels,
    pool: BufferPool,
    model: ModelDesc,
    optimizer: OptimizerDesc,
    loss: LossDesc,
    batch: usize,
    steps: u64,
    /// The layers, their activations, gradients, scratch and parameters.
    net: Network,
    /// The buffers every step binds.
    bufs: StepBufs,
    train: Option<DataSet>,
    val: Option<DataSet>,
    /// The dispatches of one step, per phase and row count.
    plans: HashMap<(Phase, usize), Vec<Op>>,
    /// The per-step optimizer constants of the current epoch.
    table: Option<wgpu::Buffer>,
    /// The per-class loss weights.
    class_w: wgpu::Buffer,
    /// Largest data set kept resident, in bytes ([`GpuTrainer::set_resident_limit`]).
    resident_limit: Option<u64>,
}

/// `v` as a kernel parameter, or an error naming `what` when it does not fit 32 bits.
fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| TrainGpuError::Input(format!("{what} is too large for the GPU: {v}")))
}

impl GpuTrainer {
    /// Places `model` on the GPU with `params` (one entry per dense or conv1d layer, in order) for batches of
    /// up to `batch` rows.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Layer`] naming the layer whose shapes do not fit, [`TrainGpuError::Input`] for
    /// parameters of the wrong size or a bad batch size, and [`TrainGpuError::Gpu`] for device failures.
    pub fn new(
        ctx: &GpuContext,
        model: &ModelDesc,
        params: &[ParamTensors],
        optimizer: OptimizerDesc,
        loss: LossDesc,
        batch: usize,
    ) -> Result<Self> {
        if batch == 0 {
            return Err(TrainGpuError::Input("batch size must be at least 1".into()));
        }
        let placed = place(model)?;
        if placed.last().map(|p| p.out_shape) != Some(Shape::Flat(model.classes)) {
            return Err(TrainGpuError::Input(format!(
                "the model must end in a vector of {} classes",
                model.classes
            )));
        }
        let mut pool = BufferPool::new(ctx);
        let kernels = Kernels::new(ctx)?;
        let net = Network::new(&mut pool, placed, params, optimizer.slots(), batch)?;
        let bufs = StepBufs::new(&mut pool, batch, model.classes)?;
        let class_w = pool.upload(CLASS_WEIGHTS, &vec![1.0f32; model.classes])?;
        Ok(Self {
            ctx: ctx.clone(),
            kernels,
            pool,
            model: model.clone(),
            optimizer,
            loss,
            batch,
            steps: 0,
            net,
            bufs,
            train: None,
            val: None,
            plans: HashMap::new(),
            table: None,
            class_w,
            resident_limit: None,
        })
    }

    /// Sets the largest data set, in bytes of features, that stays resident on the GPU; larger sets are kept
    /// on the host and uploaded in chunks of whole batches (one write per chunk, in the epoch's order).
    /// The default is half the adapter's largest storage binding. Applies to sets uploaded afterwards.
    pub fn set_resident_limit(&mut self, bytes: u64) {
        self.resident_limit = Some(bytes);
    }

    /// The adapter this trainer runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Bytes this trainer holds on the GPU.
    pub fn bytes_on_gpu(&self) -> u64 {
        self.pool.bytes_on_gpu()
    }

    /// Optimizer steps taken so far (including those restored with [`GpuTrainer::set_optimizer_state`]).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Sets the per-class loss weights (`None`: all 1).
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Input`] for a length other than the class count.
    pub fn set_class_weights(&mut self, weights: Option<&[f32]>) -> Result<()> {
        let classes = self.model.classes;
        let w = match weights {
            Some(w) if w.len() != classes => {
                return Err(TrainGpuError::Input(format!(
                    "{} class weights for {classes} classes",
                    w.len()
                )));
            }
            Some(w) => w.to_vec(),
            None => vec![1.0; classes],
        };
        let buf = self.pool.upload(CLASS_WEIGHTS, &w)?;
        if self.class_w != buf {
            // The pool made a new buffer: the plans must bind it.
            self.class_w = buf;
            self.plans.clear();
        }
        Ok(())
    }

    fn read(&mut self, buf: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        Ok(self.pool.read_back(buf, len)?)
    }

    /// Reads the current parameters back, `(weight, bias)` per dense or conv1d layer.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Gpu`] when the read fails.
    pub fn params(&mut self) -> Result<Vec<LayerParams>> {
        self.read_pairs(|p| &p.values)
    }

    /// Reads back the weight and bias buffers that `pick` chooses of every parameter layer.
    fn read_pairs(&mut self, pick: impl Fn(&ParamBufs) -> &TensorPair) -> Result<Vec<LayerParams>> {
        let bufs: Vec<(TensorPair, usize, usize)> = self
            .net
            .params
            .iter()
            .map(|p| (pick(p).clone(), p.weight_len, p.bias_len))
            .collect();
        let mut out = Vec::with_capacity(bufs.len());
        for (pair, wl, bl) in bufs {
            out.push((self.read(&pair.weight, wl)?, self.read(&pair.bias, bl)?));
        }
        Ok(out)
    }

    /// Copies the current parameters to the GPU-side "best" copy (done when the validation loss improves).
    pub fn snapshot_best(&mut self) {
        let mut encoder =
            self.ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("tickq.train.best"),
                });
        for p in &self.net.params {
            for part in Part::BOTH {
                let bytes = (p.len(part) * 4) as u64;
                encoder.copy_buffer_to_buffer(p.values.get(part), 0, p.best.get(part), 0, bytes);
            }
        }
        self.ctx.queue().submit([encoder.finish()]);
    }

    /// Reads back the copy made by the last [`GpuTrainer::snapshot_best`].
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Gpu`] when the read fails.
    pub fn best_params(&mut self) -> Result<Vec<LayerParams>> {
        self.read_pairs(|p| &p.best)
    }

    /// The optimizer state: `[slot][layer]` as `(weight, bias)` (Adam: exp_avg, exp_avg_sq; SGD: momentum).
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Gpu`] when the read fails.
    pub fn optimizer_state(&mut self) -> Result<Vec<Vec<LayerParams>>> {
        let mut out = Vec::new();
        for s in 0..self.optimizer.slots() {
            out.push(self.read_pairs(|p| &p.slots[s])?);
        }
        Ok(out)
    }

    /// Restores optimizer state saved from a run with the same model and optimizer, and its step count.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Input`] when the slot count or a tensor length differs.
    pub fn set_optimizer_state(&mut self, steps: u64, slots: &[Vec<LayerParams>]) -> Result<()> {
        if slots.len() != self.optimizer.slots() {
            return Err(TrainGpuError::Input(format!(
                "{} optimizer slots, expected {}",
                slots.len(),
                self.optimizer.slots()
            )));
        }
        for (s, layers) in slots.iter().enumerate() {
            if layers.len() != self.net.params.len() {
                return Err(TrainGpuError::Input(format!(
                    "optimizer slot {s} has {} layers, expected {}",
                    layers.len(),
                    self.net.params.len()
                )));
            }
            for (p, (w, b)) in self.net.params.iter().zip(layers) {
                if w.len() != p.weight_len || b.len() != p.bias_len {
                    return Err(TrainGpuError::Input(format!(
                        "optimizer slot {s}: tensor lengths {}/{} differ from {}/{}",
                        w.len(),
                        b.len(),
                        p.weight_len,
                        p.bias_len
                    )));
                }
                let queue = self.ctx.queue();
                queue.write_buffer(&p.slots[s].weight, 0, bytemuck::cast_slice(w));
                queue.write_buffer(&p.slots[s].bias, 0, bytemuck::cast_slice(b));
            }
        }
        self.steps = steps;
        Ok(())
    }
}
