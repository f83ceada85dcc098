//! The trainer's GPU buffers, each a named field: per layer (parameters, optimizer state, the scratch its
//! kernels share between forward and backward) and per step (cursors, statistics, the gathered batch).
//!
//! The pool still allocates by name, but a name is spelt once, where its buffer is made; plans take the
//! buffers from these fields, so a misspelt buffer does not compile.

use super::Result;
use super::place::{ConvGeom, Geometry, Placed, PoolGeom};
use crate::buffers::BufferPool;
use crate::train::desc::{Activation, ParamTensors, TrainGpuError};

/// The weight and bias buffers of one dense or conv1d layer (values, gradients, an optimizer slot...).
#[derive(Debug, Clone)]
pub(super) struct TensorPair {
    /// `[outputs, inputs]` or `[out_channels, in_channels, kernel]`.
    pub(super) weight: wgpu::Buffer,
    /// `[outputs]`.
    pub(super) bias: wgpu::Buffer,
}

/// One of the two tensors of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// The weight.
    Weight,
    /// The bias.
    Bias,
}

impl Part {
    /// Weight then bias, the order the optimizer steps them in.
    pub(super) const BOTH: [Part; 2] = [Part::Weight, Part::Bias];
}

impl TensorPair {
    /// The buffer of `part`.
    pub(super) fn get(&self, part: Part) -> &wgpu::Buffer {
        match part {
            Part::Weight => &self.weight,
            Part::Bias => &self.bias,
        }
    }
}

/// The GPU buffers of one dense or conv1d layer.
#[derive(Debug)]
pub(super) struct ParamBufs {
    /// Values in the weight.
    pub(super) weight_len: usize,
    /// Values in the bias.
    pub(super) bias_len: usize,
    /// The parameters.
    pub(super) values: TensorPair,
    /// Their gradients of the last step.
    pub(super) grads: TensorPair,
    /// The optimizer state, `[slot]` (Adam: exp_avg, exp_avg_sq; SGD with momentum: the momentum).
    pub(super) slots: Vec<TensorPair>,
    /// The weight's 0/1 pruning mask.
    pub(super) mask: Option<wgpu::Buffer>,
    /// The copy kept by [`super::GpuTrainer::snapshot_best`].
    pub(super) best: TensorPair,
}

impl ParamBufs {
    /// Values in `part`.
    pub(super) fn len(&self, part: Part) -> usize {
        match part {
            Part::Weight => self.weight_len,
            Part::Bias => self.bias_len,
        }
    }

    /// Uploads parameter layer `k` (the `k`-th dense or conv1d layer, at `placed`) with zeroed optimizer
    /// state of `slots` slots, after checking its sizes.
    fn upload(
        pool: &mut BufferPool,
        k: usize,
        placed: &Placed,
        src: &ParamTensors,
        (weight_len, bias_len): (usize, usize),
        slots: usize,
    ) -> Result<Self> {
        let bad = |reason: String| TrainGpuError::Layer {
            index: placed.index,
            kind: placed.kind.into(),
            reason,
        };
        if src.weight.len() != weight_len || src.bias.len() != bias_len {
            return Err(bad(format!(
                "expected {weight_len} weights and {bias_len} biases, got {} and {}",
                src.weight.len(),
                src.bias.len()
            )));
        }
        if let Some(m) = &src.mask
            && m.len() != weight_len
        {
            return Err(bad(format!(
                "mask has {} values for {weight_len} weights",
                m.len()
            )));
        }
        let name = |what: &str| format!("train.p{k}.{what}");
        let (wbytes, bbytes) = ((weight_len * 4) as u64, (bias_len * 4) as u64);
        let values = TensorPair {
            weight: pool.upload(&name("w"), &src.weight)?,
            bias: pool.upload(&name("b"), &src.bias)?,
        };
        let grads = TensorPair {
            weight: pool.storage(&name("gw"), wbytes)?,
            bias: pool.storage(&name("gb"), bbytes)?,
        };
        let zeros_w = vec![0.0f32; weight_len];
        let zeros_b = vec![0.0f32; bias_len];
        let mut state = Vec::with_capacity(slots);
        for s in 0..slots {
            state.push(TensorPair {
                weight: pool.upload(&name(&format!("s{s}w")), &zeros_w)?,
                bias: pool.upload(&name(&format!("s{s}b")), &zeros_b)?,
            });
        }
        let mask = match &src.mask {
            Some(m) => Some(pool.upload(&name("mask"), m)?),
            None => None,
        };
        let best = TensorPair {
            weight: pool.storage(&name("bestw"), wbytes)?,
            bias: pool.storage(&name("bestb"), bbytes)?,
        };
        Ok(Self {
            weight_len,
            bias_len,
            values,
            grads,
            slots: state,
            mask,
            best,
        })
    }
}

/// The scratch buffers of one conv1d layer, shared by its forward and backward kernels.
#[derive(Debug)]
pub(super) struct ConvScratch {
    /// The im2col of the input, `[N * T_out, C_in * K]`.
    pub(super) cols: wgpu::Buffer,
    /// The forward GEMM's output `[N * T_out, O]`, and in the backward pass the output gradient reordered
    /// into the same layout.
    pub(super) gemm: wgpu::Buffer,
    /// The gradient of `cols`.
    pub(super) dcols: wgpu::Buffer,
}

/// A placed layer with the buffers of its own: what each plan step dispatches on.
#[derive(Debug)]
pub(super) enum LayerOp {
    /// `y = x W^T + b`.
    Dense {
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
        /// Index into the trainer's parameter layers.
        param: usize,
    },
    /// 1-D convolution through im2col and one GEMM.
    Conv1d {
        /// Its shapes.
        geom: ConvGeom,
        /// Index into the trainer's parameter layers.
        param: usize,
        /// Its scratch buffers.
        scratch: ConvScratch,
    },
    /// An element-wise activation.
    Activation(Activation),
    /// Pooling over time.
    Pool {
        /// Its shapes.
        geom: PoolGeom,
        /// Per output value, the input step a max window chose (0 for the means).
        arg: wgpu::Buffer,
    },
    /// Nothing to run.
    Flatten,
}

/// A layer on the GPU: what it runs and which activation buffers it reads and writes.
#[derive(Debug)]
pub(super) struct Layer {
    /// What it runs.
    pub(super) op: LayerOp,
    /// Index of the activation (and gradient) buffer it reads.
    pub(super) input: usize,
    /// Index of the one it writes.
    pub(super) output: usize,
    /// Values per sample read.
    pub(super) in_len: usize,
    /// Values per sample written.
    pub(super) out_len: usize,
}

/// The layers and every buffer they own, sized for batches of `batch` rows.
#[derive(Debug)]
pub(super) struct Network {
    /// The layers in order.
    pub(super) layers: Vec<Layer>,
    /// `[tensor]` activations, `batch` rows each.
    pub(super) acts: Vec<wgpu::Buffer>,
    /// `[tensor]` gradients with respect to those activations.
    pub(super) grads: Vec<wgpu::Buffer>,
    /// `[tensor]` values per sample.
    pub(super) tensor_len: Vec<usize>,
    /// One per dense or conv1d layer, in order.
    pub(super) params: Vec<ParamBufs>,
}

impl Network {
    /// Allocates the activations, gradients, scratch and parameters of `placed` for batches of `batch`
    /// rows, uploading `params` (one per dense or conv1d layer) with `slots` zeroed optimizer slots each.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Input`] for a wrong number of parameter layers, [`TrainGpuError::Layer`] for one of
    /// the wrong size, [`TrainGpuError::Gpu`] when a buffer does not fit.
    pub(super) fn new(
        pool: &mut BufferPool,
        placed: Vec<Placed>,
        params: &[ParamTensors],
        slots: usize,
        batch: usize,
    ) -> Result<Self> {
        let mut tensor_len = vec![placed.first().map_or(0, |p| p.in_shape.len())];
        for p in &placed {
            if p.output == tensor_len.len() {
                tensor_len.push(p.out_shape.len());
            }
        }
        let mut acts = Vec::new();
        let mut grads = Vec::new();
        for (t, &len) in tensor_len.iter().enumerate() {
            let bytes = (batch * len * 4) as u64;
            acts.push(pool.storage(&format!("train.act.{t}"), bytes)?);
            grads.push(pool.storage(&format!("train.grad.{t}"), bytes)?);
        }
        let n_param_layers = placed
            .iter()
            .filter(|p| matches!(p.geometry, Geometry::Dense { .. } | Geometry::Conv1d(_)))
            .count();
        if params.len() != n_param_layers {
            return Err(TrainGpuError::Input(format!(
                "{} parameter tensors for {n_param_layers} dense/conv1d layers",
                params.len()
            )));
        }
        let mut pbufs = Vec::new();
        let mut layers = Vec::with_capacity(placed.len());
        for p in placed {
            let i = p.index;
            let op = match p.geometry {
                Geometry::Dense { inputs, outputs } => {
                    let param = pbufs.len();
                    let sizes = (inputs * outputs, outputs);
                    pbufs.push(ParamBufs::upload(
                        pool,
                        param,
                        &p,
                        &params[param],
                        sizes,
                        slots,
                    )?);
                    LayerOp::Dense {
                        inputs,
                        outputs,
                        param,
                    }
                }
                Geometry::Conv1d(geom) => {
                    let cols = (batch * geom.t_out * geom.cols_width() * 4) as u64;
                    let gemm = (batch * geom.t_out * geom.c_out * 4) as u64;
                    let scratch = ConvScratch {
                        cols: pool.storage(&format!("train.l{i}.cols"), cols)?,
                        dcols: pool.storage(&format!("train.l{i}.dcols"), cols)?,
                        gemm: pool.storage(&format!("train.l{i}.y2"), gemm)?,
                    };
                    let param = pbufs.len();
                    let sizes = (geom.c_out * geom.cols_width(), geom.c_out);
                    pbufs.push(ParamBufs::upload(
                        pool,
                        param,
                        &p,
                        &params[param],
                        sizes,
                        slots,
                    )?);
                    LayerOp::Conv1d {
                        geom,
                        param,
                        scratch,
                    }
                }
                Geometry::Pool(geom) => {
                    let bytes = (batch * p.out_shape.len() * 4) as u64;
                    LayerOp::Pool {
                        geom,
                        arg: pool.storage(&format!("train.l{i}.arg"), bytes)?,
                    }
                }
                Geometry::Activation(a) => LayerOp::Activation(a),
                Geometry::Flatten => LayerOp::Flatten,
            };
            layers.push(Layer {
                op,
                input: p.input,
                output: p.output,
                in_len: p.in_shape.len(),
                out_len: p.out_shape.len(),
            });
        }
        Ok(Self {
            layers,
            acts,
            grads,
            tensor_len,
            params: pbufs,
        })
    }

    /// The logits (the last activation) and their gradient.
    pub(super) fn logits(&self) -> (&wgpu::Buffer, &wgpu::Buffer) {
        let last = self.acts.len() - 1;
        (&self.acts[last], &self.grads[last])
    }
}

/// Bytes of a statistics buffer: room for both passes' [`super::PassStats::WORDS`] words.
const STATS_BYTES: u64 = 32;

/// A value per pass: the training batches and the validation set.
#[derive(Debug)]
pub(super) struct PerPhase<T> {
    /// The training pass's.
    pub(super) train: T,
    /// The evaluation pass's.
    pub(super) eval: T,
}

impl<T> PerPhase<T> {
    /// The value of `phase`.
    pub(super) fn get(&self, phase: super::Phase) -> &T {
        match phase {
            super::Phase::Train => &self.train,
            super::Phase::Eval => &self.eval,
        }
    }
}

/// The buffers every step binds, whatever the model.
#[derive(Debug)]
pub(super) struct StepBufs {
    /// The step cursor of each pass (`[step]`), advanced by the last kernel of every step.
    pub(super) cursor: PerPhase<wgpu::Buffer>,
    /// Each pass's statistics, added to by the loss kernel ([`super::PassStats::from_words`]).
    pub(super) stats: PerPhase<wgpu::Buffer>,
    /// Both passes' statistics side by side, copied there for one read-back per epoch.
    pub(super) stats_out: wgpu::Buffer,
    /// Bound where a kernel reads an operand the step does not use (no bias, no mask, no teacher).
    pub(super) unused_read: wgpu::Buffer,
    /// Bound as the optimizer's first and second moment where it keeps none (two buffers, since both
    /// bindings are written).
    pub(super) unused_moments: [wgpu::Buffer; 2],
    /// The step's labels, `[batch]`.
    pub(super) batch_labels: wgpu::Buffer,
    /// The step's teacher logits, `[batch, classes]`.
    pub(super) batch_teacher: wgpu::Buffer,
}

impl StepBufs {
    /// Allocates the step buffers for batches of `batch` rows of `classes` classes.
    pub(super) fn new(pool: &mut BufferPool, batch: usize, classes: usize) -> Result<Self> {
        Ok(Self {
            cursor: PerPhase {
                train: pool.storage("train.cursor.train", 16)?,
                eval: pool.storage("train.cursor.eval", 16)?,
            },
            stats: PerPhase {
                train: pool.storage("train.stats.train", STATS_BYTES)?,
                eval: pool.storage("train.stats.eval", STATS_BYTES)?,
            },
            stats_out: pool.storage("train.stats.out", STATS_BYTES)?,
            unused_read: pool.upload("train.dummy.r", &[0u32; 4])?,
            unused_moments: [
                pool.upload("train.dummy.w1", &[0u32; 4])?,
                pool.upload("train.dummy.w2", &[0u32; 4])?,
            ],
            batch_labels: pool.storage("train.batch.y", (batch * 4) as u64)?,
            batch_teacher: pool.storage("train.batch.t", (batch * classes * 4) as u64)?,
        })
    }
}
