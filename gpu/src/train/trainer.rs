//! [`GpuTrainer`]: whole training steps on the GPU.

use std::collections::HashMap;

use super::desc::{LayerDesc, LossDesc, ModelDesc, OptimizerDesc, ParamTensors, TrainGpuError};
use super::kernels::{K, Kernels, Op};
use crate::buffers::BufferPool;
use crate::context::GpuContext;

type Result<T> = std::result::Result<T, TrainGpuError>;

/// The weight and the bias of one dense or conv1d layer, row-major.
pub type LayerParams = (Vec<f32>, Vec<f32>);

/// Steps recorded into one command buffer before it is submitted, so a long epoch does not become one
/// huge submission (drivers may time out on those).
const STEPS_PER_SUBMIT: usize = 64;

/// The shape of one sample of an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TShape {
    Flat(usize),
    Seq { channels: usize, time: usize },
}

impl TShape {
    fn len(self) -> usize {
        match self {
            TShape::Flat(n) => n,
            TShape::Seq { channels, time } => channels * time,
        }
    }
}

/// A layer placed on the GPU: which activation buffers it reads and writes, and its parameters.
#[derive(Debug, Clone)]
struct Placed {
    desc: LayerDesc,
    input: usize,
    output: usize,
    in_shape: TShape,
    out_shape: TShape,
    /// Index into `GpuTrainer::params` for dense and conv1d layers.
    param: Option<usize>,
}

impl Placed {
    /// `(input channels, input time, output channels, output time)` when both shapes are sequences (conv1d).
    fn seq_shapes(&self) -> Option<(usize, usize, usize, usize)> {
        match (self.in_shape, self.out_shape) {
            (
                TShape::Seq {
                    channels: c_in,
                    time: t_in,
                },
                TShape::Seq {
                    channels: c_out,
                    time: t_out,
                },
            ) => Some((c_in, t_in, c_out, t_out)),
            _ => None,
        }
    }
}

/// The GPU buffers of one dense or conv1d layer.
#[derive(Debug)]
struct ParamBufs {
    weight_len: usize,
    bias_len: usize,
    masked: bool,
    /// weight, bias.
    values: [wgpu::Buffer; 2],
    grads: [wgpu::Buffer; 2],
    /// `[slot][weight or bias]`.
    slots: Vec<[wgpu::Buffer; 2]>,
    mask: Option<wgpu::Buffer>,
    best: [wgpu::Buffer; 2],
}

/// A data set resident on the GPU.
#[derive(Debug)]
struct DataSet {
    rows: usize,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    teacher: Option<wgpu::Buffer>,
    order: wgpu::Buffer,
    /// For a set too large for one GPU buffer: the host copy, streamed in chunks of whole batches.
    stream: Option<Stream>,
}

/// A data set kept on the host and uploaded one chunk of batches at a time.
#[derive(Debug)]
struct Stream {
    /// Steps (whole batches) per chunk.
    chunk_steps: usize,
    x: Vec<f32>,
    y: Vec<u32>,
    teacher: Option<Vec<f32>>,
}

/// Which data set a plan runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Phase {
    Train,
    Eval,
}

/// Loss, weight sum and correct predictions summed over the batches of a pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassStats {
    /// For cross-entropy the weighted loss sum (the batch mean times its weight sum, added up); for
    /// distillation each batch's loss times its rows.
    pub loss_sum: f32,
    /// The class-weight sum (cross-entropy) or the row count (distillation).
    pub weight_sum: f32,
    /// Samples whose largest logit is their label.
    pub correct: u32,
    /// The first step (0-based) whose loss was not finite, if any.
    pub diverged_at: Option<u32>,
}

impl PassStats {
    fn from_words(w: &[u32]) -> Self {
        let get = |i: usize| w.get(i).copied().unwrap_or(0);
        Self {
            loss_sum: f32::from_bits(get(0)),
            weight_sum: f32::from_bits(get(1)),
            correct: get(2),
            diverged_at: get(3).checked_sub(1),
        }
    }

    /// `loss_sum / weight_sum`, or 0 for a zero weight sum.
    pub fn mean_loss(&self) -> f32 {
        if self.weight_sum > 0.0 {
            self.loss_sum / self.weight_sum
        } else {
            0.0
        }
    }
}

/// The outcome of [`GpuTrainer::run_epoch`]: the training pass (measured before each update, as on the CPU)
/// and the evaluation pass over the validation set after the epoch (plain cross-entropy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Training batches.
    pub train: PassStats,
    /// Validation set, when one is uploaded.
    pub val: Option<PassStats>,
}

/// Everything one training step computed, read back for tests ([`GpuTrainer::trace_step`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StepTrace {
    /// The model input after the gather (`[N, F, T]` for sequence models).
    pub input: Vec<f32>,
    /// Each layer's output.
    pub outputs: Vec<Vec<f32>>,
    /// The loss gradient with respect to each layer's input (`None` for the first layer, which needs none).
    pub input_grads: Vec<Option<Vec<f32>>>,
    /// The loss gradient with respect to the logits.
    pub logits_grad: Vec<f32>,
    /// Weight and bias gradients of each dense or conv1d layer, in layer order (before masking).
    pub param_grads: Vec<LayerParams>,
    /// The batch's loss statistics.
    pub stats: PassStats,
    /// The parameters after the optimizer step.
    pub params_after: Vec<LayerParams>,
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
    placed: Vec<Placed>,
    /// `[tensor]` activation and gradient buffers, sized for `batch` rows.
    acts: Vec<wgpu::Buffer>,
    grads: Vec<wgpu::Buffer>,
    tensor_len: Vec<usize>,
    params: Vec<ParamBufs>,
    /// Per layer: conv im2col columns, GEMM output / reordered gradient, im2col gradient; pool argmax.
    scratch: HashMap<(usize, &'static str), wgpu::Buffer>,
    train: Option<DataSet>,
    val: Option<DataSet>,
    plans: HashMap<(Phase, usize), Vec<Op>>,
    /// The per-step optimizer constants of the current epoch.
    table: Option<wgpu::Buffer>,
    /// The per-class loss weights.
    class_w: Option<wgpu::Buffer>,
    /// Largest data set kept resident, in bytes ([`GpuTrainer::set_resident_limit`]).
    resident_limit: Option<u64>,
}

fn words_f(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

fn padded<const N: usize>(words: &[u32]) -> [u32; N] {
    let mut out = [0u32; N];
    for (o, w) in out.iter_mut().zip(words) {
        *o = *w;
    }
    out
}

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
        let mut tensor_len = vec![placed.first().map_or(0, |p| p.in_shape.len())];
        for p in &placed {
            if p.output == tensor_len.len() {
                tensor_len.push(p.out_shape.len());
            }
        }
        if placed.last().map(|p| p.out_shape) != Some(TShape::Flat(model.classes)) {
            return Err(TrainGpuError::Input(format!(
                "the model must end in a vector of {} classes",
                model.classes
            )));
        }
        let mut pool = BufferPool::new(ctx);
        let kernels = Kernels::new(ctx)?;
        let mut acts = Vec::new();
        let mut grads = Vec::new();
        for (t, &len) in tensor_len.iter().enumerate() {
            let bytes = (batch * len * 4) as u64;
            acts.push(pool.storage(&format!("train.act.{t}"), bytes)?);
            grads.push(pool.storage(&format!("train.grad.{t}"), bytes)?);
        }
        let n_param_layers = placed.iter().filter(|p| p.param.is_some()).count();
        if params.len() != n_param_layers {
            return Err(TrainGpuError::Input(format!(
                "{} parameter tensors for {n_param_layers} dense/conv1d layers",
                params.len()
            )));
        }
        let mut pbufs = Vec::new();
        let mut scratch = HashMap::new();
        for (i, p) in placed.iter().enumerate() {
            let (wlen, blen) = match p.desc {
                LayerDesc::Dense { inputs, outputs } => (inputs * outputs, outputs),
                LayerDesc::Conv1d {
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                } => (out_channels * in_channels * kernel, out_channels),
                LayerDesc::MaxPool1d { .. }
                | LayerDesc::AvgPool1d { .. }
                | LayerDesc::GlobalAvgPool => {
                    let bytes = (batch * p.out_shape.len() * 4) as u64;
                    scratch.insert((i, "arg"), pool.storage(&format!("train.l{i}.arg"), bytes)?);
                    continue;
                }
                _ => continue,
            };
            if let (
                LayerDesc::Conv1d { kernel, .. },
                TShape::Seq { channels, .. },
                TShape::Seq {
                    channels: o,
                    time: t_out,
                },
            ) = (&p.desc, p.in_shape, p.out_shape)
            {
                let cols = (batch * t_out * channels * kernel * 4) as u64;
                scratch.insert(
                    (i, "cols"),
                    pool.storage(&format!("train.l{i}.cols"), cols)?,
                );
                scratch.insert(
                    (i, "dcols"),
                    pool.storage(&format!("train.l{i}.dcols"), cols)?,
                );
                let y2 = (batch * t_out * o * 4) as u64;
                scratch.insert((i, "y2"), pool.storage(&format!("train.l{i}.y2"), y2)?);
            }
            let k = pbufs.len();
            let src = &params[k];
            if src.weight.len() != wlen || src.bias.len() != blen {
                return Err(TrainGpuError::Layer {
                    index: i,
                    kind: p.desc.kind().into(),
                    reason: format!(
                        "expected {wlen} weights and {blen} biases, got {} and {}",
                        src.weight.len(),
                        src.bias.len()
                    ),
                });
            }
            if let Some(m) = &src.mask
                && m.len() != wlen
            {
                return Err(TrainGpuError::Layer {
                    index: i,
                    kind: p.desc.kind().into(),
                    reason: format!("mask has {} values for {wlen} weights", m.len()),
                });
            }
            let name = |what: &str| format!("train.p{k}.{what}");
            let values = [
                pool.upload(&name("w"), &src.weight)?,
                pool.upload(&name("b"), &src.bias)?,
            ];
            let grads = [
                pool.storage(&name("gw"), (wlen * 4) as u64)?,
                pool.storage(&name("gb"), (blen * 4) as u64)?,
            ];
            let zeros_w = vec![0.0f32; wlen];
            let zeros_b = vec![0.0f32; blen];
            let mut slots = Vec::new();
            for s in 0..optimizer.slots() {
                slots.push([
                    pool.upload(&name(&format!("s{s}w")), &zeros_w)?,
                    pool.upload(&name(&format!("s{s}b")), &zeros_b)?,
                ]);
            }
            let mask = match &src.mask {
                Some(m) => Some(pool.upload(&name("mask"), m)?),
                None => None,
            };
            let best = [
                pool.storage(&name("bestw"), (wlen * 4) as u64)?,
                pool.storage(&name("bestb"), (blen * 4) as u64)?,
            ];
            pbufs.push(ParamBufs {
                weight_len: wlen,
                bias_len: blen,
                masked: mask.is_some(),
                values,
                grads,
                slots,
                mask,
                best,
            });
        }
        let mut me = Self {
            ctx: ctx.clone(),
            kernels,
            pool,
            model: model.clone(),
            optimizer,
            loss,
            batch,
            steps: 0,
            placed,
            acts,
            grads,
            tensor_len,
            params: pbufs,
            scratch,
            train: None,
            val: None,
            plans: HashMap::new(),
            table: None,
            class_w: None,
            resident_limit: None,
        };
        for name in ["cursor.train", "cursor.eval"] {
            me.pool.storage(&format!("train.{name}"), 16)?;
        }
        for name in ["stats.train", "stats.eval", "stats.out"] {
            me.pool.storage(&format!("train.{name}"), 32)?;
        }
        me.pool.upload("train.dummy.r", &[0u32; 4])?;
        me.pool.upload("train.dummy.w1", &[0u32; 4])?;
        me.pool.upload("train.dummy.w2", &[0u32; 4])?;
        let classes = model.classes;
        me.pool.storage("train.batch.y", (batch * 4) as u64)?;
        me.pool
            .storage("train.batch.t", (batch * classes * 4) as u64)?;
        me.set_class_weights(None)?;
        Ok(me)
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

    fn buf(&mut self, name: &str) -> Result<wgpu::Buffer> {
        // Every name used here is created in `new` or an upload; asking again returns the same buffer.
        Ok(self.pool.storage(name, 16)?)
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
        let buf = self.pool.upload("train.class_w", &w)?;
        if self.class_w.as_ref() != Some(&buf) {
            self.class_w = Some(buf);
            self.plans.clear();
        }
        Ok(())
    }

    fn upload_set(
        &mut self,
        phase: &str,
        x: &[f32],
        y: &[u8],
        teacher: Option<&[f32]>,
    ) -> Result<DataSet> {
        let in_len = self.tensor_len[0];
        let classes = self.model.classes;
        let rows = y.len();
        if rows == 0 || x.len() != rows * in_len {
            return Err(TrainGpuError::Input(format!(
                "{phase} set: {} values for {rows} rows of {in_len}",
                x.len()
            )));
        }
        if let Some((i, &l)) = y
            .iter()
            .enumerate()
            .find(|(_, l)| usize::from(**l) >= classes)
        {
            return Err(TrainGpuError::Input(format!(
                "{phase} set: label {i} is {l}, but the model has {classes} classes"
            )));
        }
        if let Some(t) = teacher
            && t.len() != rows * classes
        {
            return Err(TrainGpuError::Input(format!(
                "{phase} set: {} teacher logits for {rows} rows of {classes} classes",
                t.len()
            )));
        }
        u32_of(rows, "row count")?;
        let labels: Vec<u32> = y.iter().map(|&l| u32::from(l)).collect();
        self.plans.clear();
        // Sets that fit one storage binding (with room to spare) stay resident; larger ones are streamed.
        let limit = self
            .resident_limit
            .unwrap_or(self.ctx.limits().max_storage_buffer_binding_size / 2);
        let row_bytes = (in_len * 4) as u64;
        let name = |what: &str| format!("train.{phase}.{what}");
        if rows as u64 * row_bytes <= limit {
            let order: Vec<u32> = (0..rows as u32).collect();
            return Ok(DataSet {
                rows,
                x: self.pool.upload(&name("x"), x)?,
                y: self.pool.upload(&name("y"), &labels)?,
                teacher: match teacher {
                    Some(t) => Some(self.pool.upload(&name("teacher"), t)?),
                    None => None,
                },
                order: self.pool.upload(&name("order"), &order)?,
                stream: None,
            });
        }
        let batch_bytes = self.batch as u64 * row_bytes;
        if batch_bytes > limit {
            // Not even one batch fits: a device limit, so `--device auto` falls back to the CPU.
            return Err(crate::GpuError::BufferTooLarge {
                buffer: format!("train.{phase}.x (one batch of {} rows)", self.batch),
                bytes: batch_bytes,
                limit,
            }
            .into());
        }
        let chunk_steps = ((limit / batch_bytes) as usize).clamp(1, STEPS_PER_SUBMIT);
        let chunk_rows = chunk_steps * self.batch;
        let local: Vec<u32> = (0..rows).map(|p| (p % chunk_rows) as u32).collect();
        Ok(DataSet {
            rows,
            x: self
                .pool
                .storage(&name("x"), chunk_rows as u64 * row_bytes)?,
            y: self.pool.storage(&name("y"), (chunk_rows * 4) as u64)?,
            teacher: match teacher {
                Some(_) => Some(
                    self.pool
                        .storage(&name("teacher"), (chunk_rows * classes * 4) as u64)?,
                ),
                None => None,
            },
            order: self.pool.upload(&name("order"), &local)?,
            stream: Some(Stream {
                chunk_steps,
                x: x.to_vec(),
                y: labels,
                teacher: teacher.map(<[f32]>::to_vec),
            }),
        })
    }

    /// Writes the rows of steps `first..first + steps` (positions in `order`) into a streamed set's chunk.
    fn write_chunk(&self, set: &DataSet, order: &[u32], first: usize, steps: usize) {
        let Some(st) = &set.stream else { return };
        let in_len = self.tensor_len[0];
        let classes = self.model.classes;
        let start = (first * self.batch).min(order.len());
        let end = ((first + steps) * self.batch).min(order.len());
        let idx = &order[start..end];
        let mut x = Vec::with_capacity(idx.len() * in_len);
        let mut y = Vec::with_capacity(idx.len());
        let mut t = Vec::new();
        for &i in idx {
            let i = i as usize;
            x.extend_from_slice(&st.x[i * in_len..(i + 1) * in_len]);
            y.push(st.y[i]);
            if let Some(tt) = &st.teacher {
                t.extend_from_slice(&tt[i * classes..(i + 1) * classes]);
            }
        }
        let q = self.ctx.queue();
        q.write_buffer(&set.x, 0, bytemuck::cast_slice(&x));
        q.write_buffer(&set.y, 0, bytemuck::cast_slice(&y));
        if let Some(tb) = &set.teacher
            && !t.is_empty()
        {
            q.write_buffer(tb, 0, bytemuck::cast_slice(&t));
        }
    }

    /// The order the gather kernel reads: the rows themselves for a resident set, the position within the
    /// chunk for a streamed one.
    fn gather_order(&self, set: &DataSet, order: &[u32]) -> Vec<u32> {
        match &set.stream {
            None => order.to_vec(),
            Some(st) => {
                let chunk = (st.chunk_steps * self.batch) as u32;
                (0..order.len() as u32).map(|p| p % chunk).collect()
            }
        }
    }

    /// Uploads the training set once: `x` holds `rows` rows of `time_steps * features` values (time-major),
    /// `y` the labels, and `teacher` the teacher's logits (`rows * classes`) when distilling.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Input`] when the sizes disagree, a label is out of range, teacher logits are missing
    /// for distillation, or the set does not fit in one GPU buffer.
    pub fn upload_train_set(&mut self, x: &[f32], y: &[u8], teacher: Option<&[f32]>) -> Result<()> {
        if matches!(self.loss, LossDesc::Distill { .. }) && teacher.is_none() {
            return Err(TrainGpuError::Input(
                "distillation needs the teacher's logits for the training set".into(),
            ));
        }
        let set = self.upload_set("train", x, y, teacher)?;
        self.train = Some(set);
        Ok(())
    }

    /// Uploads the validation set, evaluated after every epoch with the plain (class-weighted) cross-entropy.
    ///
    /// # Errors
    ///
    /// As [`GpuTrainer::upload_train_set`].
    pub fn upload_val_set(&mut self, x: &[f32], y: &[u8]) -> Result<()> {
        let set = self.upload_set("val", x, y, None)?;
        self.val = Some(set);
        Ok(())
    }

    fn uniform<const N: usize>(&mut self, name: String, words: &[u32]) -> Result<wgpu::Buffer> {
        let value: [u32; N] = padded(words);
        Ok(self.pool.uniform(&name, &value)?)
    }

    /// Builds the dispatches of one step over `rows` rows.
    fn build_plan(&mut self, phase: Phase, rows: usize) -> Result<Vec<Op>> {
        let ctx = self.ctx.clone();
        let tag = format!("{phase:?}.{rows}");
        let set = match phase {
            Phase::Train => self.train.as_ref(),
            Phase::Eval => self.val.as_ref(),
        }
        .ok_or_else(|| TrainGpuError::Input(format!("no {phase:?} set uploaded")))?;
        let (set_x, set_y, set_order) = (set.x.clone(), set.y.clone(), set.order.clone());
        let set_teacher = set.teacher.clone();
        let cursor = self.buf(match phase {
            Phase::Train => "train.cursor.train",
            Phase::Eval => "train.cursor.eval",
        })?;
        let stats = self.buf(match phase {
            Phase::Train => "train.stats.train",
            Phase::Eval => "train.stats.eval",
        })?;
        let dummy_r = self.buf("train.dummy.r")?;
        let dummy_w1 = self.buf("train.dummy.w1")?;
        let dummy_w2 = self.buf("train.dummy.w2")?;
        let batch_y = self.buf("train.batch.y")?;
        let batch_t = self.buf("train.batch.t")?;
        let class_w = self.buf("train.class_w")?;
        let r32 = u32_of(rows, "batch size")?;
        let b32 = u32_of(self.batch, "batch size")?;
        let classes = self.model.classes;
        let c32 = u32_of(classes, "class count")?;
        let in_len = self.tensor_len[0];
        let mut ops = Vec::new();
        let mut n = 0usize;
        let mut next = |s: &mut Self, words: &[u32]| -> Result<wgpu::Buffer> {
            n += 1;
            s.uniform::<12>(format!("train.u.{tag}.{n}"), words)
        };

        // Gather the batch.
        let u = next(
            self,
            &[
                r32,
                u32_of(in_len, "input width")?,
                u32_of(self.model.time_steps, "time steps")?,
                u32_of(self.model.features, "features")?,
                b32,
            ],
        )?;
        let x0 = self.acts[0].clone();
        ops.push(self.kernels.op_1d(
            &ctx,
            K::GatherX,
            &[&u, &cursor, &set_order, &set_x, &x0],
            (rows * in_len) as u64,
        )?);
        let u = next(self, &[r32, c32, b32, u32::from(set_teacher.is_some())])?;
        let teacher = set_teacher.unwrap_or_else(|| dummy_r.clone());
        ops.push(self.kernels.op_1d(
            &ctx,
            K::GatherY,
            &[
                &u, &cursor, &set_order, &set_y, &teacher, &batch_y, &batch_t,
            ],
            (rows * classes) as u64,
        )?);

        // Forward.
        let placed = self.placed.clone();
        for (i, p) in placed.iter().enumerate() {
            let xin = self.acts[p.input].clone();
            let xout = self.acts[p.output].clone();
            match p.desc {
                LayerDesc::Dense { inputs, outputs } => {
                    let pb = &self.params[p.param.unwrap_or(0)];
                    let (w, b) = (pb.values[0].clone(), pb.values[1].clone());
                    let (i32_, o32) = (u32_of(inputs, "width")?, u32_of(outputs, "width")?);
                    let u = next(self, &[r32, o32, i32_, i32_, 1, 1, i32_, 1])?;
                    ops.push(self.matmul(&ctx, &u, &xin, &w, &b, &xout, rows, outputs)?);
                }
                LayerDesc::Conv1d {
                    kernel,
                    stride,
                    dilation,
                    pad_left,
                    ..
                } => {
                    let Some((c_in, t_in, o, t_out)) = p.seq_shapes() else {
                        continue;
                    };
                    let pb = &self.params[p.param.unwrap_or(0)];
                    let (w, b) = (pb.values[0].clone(), pb.values[1].clone());
                    let cols = self.scratch[&(i, "cols")].clone();
                    let y2 = self.scratch[&(i, "y2")].clone();
                    let conv_words = [
                        r32,
                        u32_of(c_in, "channels")?,
                        u32_of(t_in, "time")?,
                        u32_of(t_out, "time")?,
                        u32_of(kernel, "kernel")?,
                        u32_of(stride, "stride")?,
                        u32_of(dilation, "dilation")?,
                        u32_of(pad_left, "padding")?,
                    ];
                    let u = next(self, &conv_words)?;
                    ops.push(self.kernels.op_1d(
                        &ctx,
                        K::Im2Col,
                        &[&u, &xin, &cols],
                        (rows * t_out * c_in * kernel) as u64,
                    )?);
                    let ck = u32_of(c_in * kernel, "im2col width")?;
                    let m = u32_of(rows * t_out, "im2col rows")?;
                    let u = next(self, &[m, u32_of(o, "channels")?, ck, ck, 1, 1, ck, 0])?;
                    ops.push(self.matmul(&ctx, &u, &cols, &w, &dummy_r, &y2, rows * t_out, o)?);
                    let u = next(self, &[r32, u32_of(o, "channels")?, u32_of(t_out, "time")?])?;
                    ops.push(self.kernels.op_1d(
                        &ctx,
                        K::ConvOut,
                        &[&u, &y2, &b, &xout],
                        (rows * o * t_out) as u64,
                    )?);
                }
                LayerDesc::Activation(a) => {
                    let (op, lo, hi) = a.code();
                    let len = rows * p.in_shape.len();
                    let u = next(
                        self,
                        &[
                            u32_of(len, "activation size")?,
                            op,
                            lo.to_bits(),
                            hi.to_bits(),
                        ],
                    )?;
                    ops.push(self.kernels.op_1d(
                        &ctx,
                        K::ActFwd,
                        &[&u, &xin, &xout],
                        len as u64,
                    )?);
                }
                LayerDesc::MaxPool1d { .. }
                | LayerDesc::AvgPool1d { .. }
                | LayerDesc::GlobalAvgPool => {
                    let words = pool_words(p, rows)?;
                    let u = next(self, &words)?;
                    let arg = self.scratch[&(i, "arg")].clone();
                    let count = rows * p.out_shape.len();
                    ops.push(self.kernels.op_1d(
                        &ctx,
                        K::PoolFwd,
                        &[&u, &xin, &xout, &arg],
                        count as u64,
                    )?);
                }
                LayerDesc::Flatten => {}
            }
        }

        // Loss and its gradient.
        let last = self.acts.len() - 1;
        let logits = self.acts[last].clone();
        let glogits = self.grads[last].clone();
        let (mode, alpha, temp) = match (phase, &self.loss) {
            (Phase::Train, LossDesc::Distill { alpha, temperature }) => (1, *alpha, *temperature),
            _ => (0, 0.0, 1.0),
        };
        let u = next(self, &[r32, c32, mode, 0, alpha.to_bits(), temp.to_bits()])?;
        ops.push(self.kernels.op(
            &ctx,
            K::Loss,
            &[
                &u, &logits, &batch_y, &batch_t, &class_w, &cursor, &glogits, &stats,
            ],
            [1, 1, 1],
        )?);

        if phase == Phase::Train {
            // Backward.
            for (i, p) in placed.iter().enumerate().rev() {
                let gout = self.grads[p.output].clone();
                let gin = self.grads[p.input].clone();
                let xin = self.acts[p.input].clone();
                let need_dx = i > 0;
                match p.desc {
                    LayerDesc::Dense { inputs, outputs } => {
                        let pb = &self.params[p.param.unwrap_or(0)];
                        let w = pb.values[0].clone();
                        let (gw, gb) = (pb.grads[0].clone(), pb.grads[1].clone());
                        let (i32_, o32) = (u32_of(inputs, "width")?, u32_of(outputs, "width")?);
                        // dW[o, i] = sum_s dY[s, o] X[s, i]
                        let u = next(self, &[o32, i32_, r32, 1, o32, i32_, 1, 0])?;
                        ops.push(
                            self.matmul(&ctx, &u, &gout, &xin, &dummy_r, &gw, outputs, inputs)?,
                        );
                        let u = next(self, &[r32, o32])?;
                        ops.push(self.kernels.op_1d(
                            &ctx,
                            K::ColSum,
                            &[&u, &gout, &gb],
                            outputs as u64,
                        )?);
                        if need_dx {
                            // dX[s, i] = sum_o dY[s, o] W[o, i]
                            let u = next(self, &[r32, i32_, o32, o32, 1, i32_, 1, 0])?;
                            ops.push(
                                self.matmul(&ctx, &u, &gout, &w, &dummy_r, &gin, rows, inputs)?,
                            );
                        }
                    }
                    LayerDesc::Conv1d {
                        kernel,
                        stride,
                        dilation,
                        pad_left,
                        ..
                    } => {
                        let Some((c_in, t_in, o, t_out)) = p.seq_shapes() else {
                            continue;
                        };
                        let pb = &self.params[p.param.unwrap_or(0)];
                        let w = pb.values[0].clone();
                        let (gw, gb) = (pb.grads[0].clone(), pb.grads[1].clone());
                        let cols = self.scratch[&(i, "cols")].clone();
                        let dcols = self.scratch[&(i, "dcols")].clone();
                        let g2 = self.scratch[&(i, "y2")].clone();
                        let o32 = u32_of(o, "channels")?;
                        let ck = u32_of(c_in * kernel, "im2col width")?;
                        let m = u32_of(rows * t_out, "im2col rows")?;
                        let u = next(self, &[r32, o32, u32_of(t_out, "time")?])?;
                        ops.push(self.kernels.op_1d(
                            &ctx,
                            K::ConvGrad,
                            &[&u, &gout, &g2],
                            (rows * o * t_out) as u64,
                        )?);
                        // dW[o, j] = sum_r g2[r, o] cols[r, j]
                        let u = next(self, &[o32, ck, m, 1, o32, ck, 1, 0])?;
                        ops.push(self.matmul(
                            &ctx,
                            &u,
                            &g2,
                            &cols,
                            &dummy_r,
                            &gw,
                            o,
                            c_in * kernel,
                        )?);
                        let u = next(self, &[m, o32])?;
                        ops.push(
                            self.kernels
                                .op_1d(&ctx, K::ColSum, &[&u, &g2, &gb], o as u64)?,
                        );
                        if need_dx {
                            // dcols[r, j] = sum_o g2[r, o] W[o, j]
                            let u = next(self, &[m, ck, o32, o32, 1, ck, 1, 0])?;
                            ops.push(self.matmul(
                                &ctx,
                                &u,
                                &g2,
                                &w,
                                &dummy_r,
                                &dcols,
                                rows * t_out,
                                c_in * kernel,
                            )?);
                            let words = [
                                r32,
                                u32_of(c_in, "channels")?,
                                u32_of(t_in, "time")?,
                                u32_of(t_out, "time")?,
                                u32_of(kernel, "kernel")?,
                                u32_of(stride, "stride")?,
                                u32_of(dilation, "dilation")?,
                                u32_of(pad_left, "padding")?,
                            ];
                            let u = next(self, &words)?;
                            ops.push(self.kernels.op_1d(
                                &ctx,
                                K::Col2Im,
                                &[&u, &dcols, &gin],
                                (rows * c_in * t_in) as u64,
                            )?);
                        }
                    }
                    LayerDesc::Activation(a) if need_dx => {
                        let (op, lo, hi) = a.code();
                        let cached = if a.uses_output() {
                            self.acts[p.output].clone()
                        } else {
                            xin.clone()
                        };
                        let len = rows * p.in_shape.len();
                        let u = next(
                            self,
                            &[
                                u32_of(len, "activation size")?,
                                op,
                                lo.to_bits(),
                                hi.to_bits(),
                            ],
                        )?;
                        ops.push(self.kernels.op_1d(
                            &ctx,
                            K::ActBwd,
                            &[&u, &gout, &cached, &gin],
                            len as u64,
                        )?);
                    }
                    LayerDesc::MaxPool1d { .. }
                    | LayerDesc::AvgPool1d { .. }
                    | LayerDesc::GlobalAvgPool
                        if need_dx =>
                    {
                        let words = pool_words(p, rows)?;
                        let u = next(self, &words)?;
                        let arg = self.scratch[&(i, "arg")].clone();
                        let count = rows * p.in_shape.len();
                        ops.push(self.kernels.op_1d(
                            &ctx,
                            K::PoolBwd,
                            &[&u, &gout, &arg, &gin],
                            count as u64,
                        )?);
                    }
                    _ => {}
                }
            }

            // Optimizer.
            let table = self.buf("train.table")?;
            let (kind, lr, beta1, beta2, eps, wd, momentum, nesterov) = match self.optimizer {
                OptimizerDesc::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => (0u32, lr, beta1, beta2, eps, weight_decay, 0.0, false),
                OptimizerDesc::Sgd {
                    lr,
                    momentum,
                    nesterov,
                    weight_decay,
                } => (1u32, lr, 0.0, 0.0, 0.0, weight_decay, momentum, nesterov),
            };
            for j in 0..self.params.len() {
                for t in 0..2 {
                    let pb = &self.params[j];
                    let len = if t == 0 { pb.weight_len } else { pb.bias_len };
                    let masked = t == 0 && pb.masked;
                    let value = pb.values[t].clone();
                    let grad = pb.grads[t].clone();
                    let m = pb
                        .slots
                        .first()
                        .map_or_else(|| dummy_w1.clone(), |s| s[t].clone());
                    let v = pb
                        .slots
                        .get(1)
                        .map_or_else(|| dummy_w2.clone(), |s| s[t].clone());
                    let mask = match (&pb.mask, masked) {
                        (Some(mk), true) => mk.clone(),
                        _ => dummy_r.clone(),
                    };
                    let mut words = vec![
                        u32_of(len, "parameter count")?,
                        kind,
                        u32::from(masked),
                        u32::from(nesterov),
                    ];
                    words.extend(words_f(&[lr, beta1, beta2, eps, wd, momentum]));
                    let u = next(self, &words)?;
                    ops.push(self.kernels.op_1d(
                        &ctx,
                        K::Optim,
                        &[&u, &value, &grad, &m, &v, &mask, &table, &cursor],
                        len as u64,
                    )?);
                }
            }
        }
        ops.push(self.kernels.op(&ctx, K::Advance, &[&cursor], [1, 1, 1])?);
        Ok(ops)
    }

    #[allow(clippy::too_many_arguments)] // The matmul operands, as the kernel binds them.
    fn matmul(
        &self,
        ctx: &GpuContext,
        u: &wgpu::Buffer,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        c: &wgpu::Buffer,
        m: usize,
        n: usize,
    ) -> Result<Op> {
        let groups = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1];
        Ok(self
            .kernels
            .op(ctx, K::Matmul, &[u, a, b, bias, c], groups)?)
    }

    fn plan(&mut self, phase: Phase, rows: usize) -> Result<Vec<Op>> {
        if let Some(p) = self.plans.get(&(phase, rows)) {
            return Ok(p.clone());
        }
        let p = self.build_plan(phase, rows)?;
        self.plans.insert((phase, rows), p.clone());
        Ok(p)
    }

    /// The per-step optimizer constants for steps `first..first + n` (1-based step numbers).
    fn step_table(&self, first: u64, n: usize) -> Vec<[f32; 4]> {
        (0..n as u64)
            .map(|s| {
                let t = first + s;
                match self.optimizer {
                    OptimizerDesc::Adam {
                        lr, beta1, beta2, ..
                    } => {
                        let t = t as f64;
                        let bc1 = 1.0 - f64::from(beta1).powf(t);
                        let bc2_sqrt = (1.0 - f64::from(beta2).powf(t)).sqrt();
                        [
                            (f64::from(lr) / bc1) as f32,
                            (1.0 / bc2_sqrt) as f32,
                            0.0,
                            0.0,
                        ]
                    }
                    OptimizerDesc::Sgd { .. } => [0.0, 0.0, if t == 1 { 1.0 } else { 0.0 }, 0.0],
                }
            })
            .collect()
    }

    /// Runs one epoch: the batches in `order` (indices into the training set; the last batch may be short),
    /// one optimizer step each, then the validation pass when a validation set is uploaded.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Input`] without a training set or for an index out of range; [`TrainGpuError::Gpu`].
    pub fn run_epoch(&mut self, order: &[usize]) -> Result<EpochStats> {
        let train = self
            .train
            .as_ref()
            .ok_or_else(|| TrainGpuError::Input("no training set uploaded".into()))?;
        if order.is_empty() {
            return Err(TrainGpuError::Input(
                "an epoch needs at least one row".into(),
            ));
        }
        if let Some(&bad) = order.iter().find(|&&i| i >= train.rows) {
            return Err(TrainGpuError::Input(format!(
                "row {bad} is out of range for a training set of {} rows",
                train.rows
            )));
        }
        let order_u32: Vec<u32> = order.iter().map(|&i| i as u32).collect();
        let gather = self.gather_order(train, &order_u32);
        let chunk_steps = train
            .stream
            .as_ref()
            .map_or(STEPS_PER_SUBMIT, |s| s.chunk_steps);
        let order_buf = self.pool.upload("train.train.order", &gather)?;
        if let Some(t) = self.train.as_mut()
            && t.order != order_buf
        {
            // The pool grew the buffer: the plans must bind the new one.
            t.order = order_buf;
            self.plans.clear();
        }
        let n_steps = order.len().div_ceil(self.batch);
        let table = self.step_table(self.steps + 1, n_steps);
        let table_buf = self.pool.upload("train.table", &table)?;
        if self.table.as_ref() != Some(&table_buf) {
            self.table = Some(table_buf);
            self.plans.clear();
        }
        let full = self.plan(Phase::Train, self.batch)?;
        let tail_rows = order.len() % self.batch;
        let tail = if tail_rows > 0 {
            Some(self.plan(Phase::Train, tail_rows)?)
        } else {
            None
        };
        let cursor = self.buf("train.cursor.train")?;
        let stats = self.buf("train.stats.train")?;
        let mut encoder = self.encoder();
        encoder.clear_buffer(&cursor, 0, None);
        encoder.clear_buffer(&stats, 0, None);
        let full_steps = order.len() / self.batch;
        for first in (0..n_steps).step_by(chunk_steps) {
            let steps = chunk_steps.min(n_steps - first);
            if let Some(t) = self.train.as_ref() {
                self.write_chunk(t, &order_u32, first, steps);
            }
            for s in first..first + steps {
                let ops = if s < full_steps {
                    &full
                } else {
                    tail.as_ref().unwrap_or(&full)
                };
                self.kernels.record(&mut encoder, ops);
            }
            self.ctx.queue().submit([encoder.finish()]);
            encoder = self.encoder();
        }
        self.steps += n_steps as u64;
        let has_val = self.val.is_some();
        if has_val {
            encoder = self.record_eval(encoder)?;
        }
        let eval_stats = self.buf("train.stats.eval")?;
        let both = self.buf("train.stats.out")?;
        encoder.copy_buffer_to_buffer(&stats, 0, &both, 0, 16);
        encoder.copy_buffer_to_buffer(&eval_stats, 0, &both, 16, 16);
        self.ctx.queue().submit([encoder.finish()]);
        let words: Vec<u32> = self.pool.read_back(&both, 8)?;
        Ok(EpochStats {
            train: PassStats::from_words(&words[..4]),
            val: has_val.then(|| PassStats::from_words(&words[4..])),
        })
    }

    fn encoder(&self) -> wgpu::CommandEncoder {
        self.ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tickq.train"),
            })
    }

    /// Records the validation pass after whatever `encoder` holds; a streamed set submits chunk by chunk.
    fn record_eval(&mut self, mut encoder: wgpu::CommandEncoder) -> Result<wgpu::CommandEncoder> {
        let Some(val) = self.val.as_ref() else {
            return Ok(encoder);
        };
        let rows = val.rows;
        let chunk_steps = val.stream.as_ref().map(|s| s.chunk_steps);
        let full = self.plan(Phase::Eval, self.batch)?;
        let tail_rows = rows % self.batch;
        let tail = if tail_rows > 0 {
            Some(self.plan(Phase::Eval, tail_rows)?)
        } else {
            None
        };
        let cursor = self.buf("train.cursor.eval")?;
        let stats = self.buf("train.stats.eval")?;
        encoder.clear_buffer(&cursor, 0, None);
        encoder.clear_buffer(&stats, 0, None);
        let n_steps = rows.div_ceil(self.batch);
        let full_steps = rows / self.batch;
        let identity: Vec<u32> = match chunk_steps {
            Some(_) => (0..rows as u32).collect(),
            None => Vec::new(),
        };
        let chunk = chunk_steps.unwrap_or(n_steps);
        for first in (0..n_steps).step_by(chunk) {
            let steps = chunk.min(n_steps - first);
            if chunk_steps.is_some() {
                // Chunks overwrite the same buffers: everything recorded so far must run first.
                self.ctx.queue().submit([encoder.finish()]);
                encoder = self.encoder();
                if let Some(v) = self.val.as_ref() {
                    self.write_chunk(v, &identity, first, steps);
                }
            }
            for s in first..first + steps {
                let ops = if s < full_steps {
                    &full
                } else {
                    tail.as_ref().unwrap_or(&full)
                };
                self.kernels.record(&mut encoder, ops);
            }
        }
        Ok(encoder)
    }

    /// Evaluates the validation set with the current parameters (cross-entropy with the class weights).
    ///
    /// # Errors
    ///
    /// [`TrainGpuError::Input`] without a validation set; [`TrainGpuError::Gpu`].
    pub fn evaluate(&mut self) -> Result<PassStats> {
        if self.val.is_none() {
            return Err(TrainGpuError::Input("no validation set uploaded".into()));
        }
        let encoder = self
            .ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("tickq.train.eval"),
            });
        let encoder = self.record_eval(encoder)?;
        self.ctx.queue().submit([encoder.finish()]);
        let stats = self.buf("train.stats.eval")?;
        let words: Vec<u32> = self.pool.read_back(&stats, 4)?;
        Ok(PassStats::from_words(&words))
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

    fn read_pairs(
        &mut self,
        pick: impl Fn(&ParamBufs) -> &[wgpu::Buffer; 2],
    ) -> Result<Vec<LayerParams>> {
        let bufs: Vec<([wgpu::Buffer; 2], usize, usize)> = self
            .params
            .iter()
            .map(|p| (pick(p).clone(), p.weight_len, p.bias_len))
            .collect();
        let mut out = Vec::with_capacity(bufs.len());
        for ([w, b], wl, bl) in bufs {
            out.push((self.read(&w, wl)?, self.read(&b, bl)?));
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
        for p in &self.params {
            encoder.copy_buffer_to_buffer(
                &p.values[0],
                0,
                &p.best[0],
                0,
                (p.weight_len * 4) as u64,
            );
            encoder.copy_buffer_to_buffer(&p.values[1], 0, &p.best[1], 0, (p.bias_len * 4) as u64);
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
            if layers.len() != self.params.len() {
                return Err(TrainGpuError::Input(format!(
                    "optimizer slot {s} has {} layers, expected {}",
                    layers.len(),
                    self.params.len()
                )));
            }
            for (p, (w, b)) in self.params.iter().zip(layers) {
                if w.len() != p.weight_len || b.len() != p.bias_len {
                    return Err(TrainGpuError::Input(format!(
                        "optimizer slot {s}: tensor lengths {}/{} differ from {}/{}",
                        w.len(),
                        b.len(),
                        p.weight_len,
                        p.bias_len
                    )));
                }
                self.ctx
                    .queue()
                    .write_buffer(&p.slots[s][0], 0, bytemuck::cast_slice(w));
                self.ctx
                    .queue()
                    .write_buffer(&p.slots[s][1], 0, bytemuck::cast_slice(b));
            }
        }
        self.steps = steps;
        Ok(())
    }

    /// Runs one training step on `x`/`y` (and `teacher` logits when distilling) and reads back every
    /// intermediate buffer, so tests can compare each kernel with the CPU implementation.
    /// The step counts as a training step (the optimizer updates the parameters); the training set is replaced.
    ///
    /// # Errors
    ///
    /// As [`GpuTrainer::upload_train_set`] and [`GpuTrainer::run_epoch`]; also when `y` has more rows than the
    /// batch size.
    pub fn trace_step(
        &mut self,
        x: &[f32],
        y: &[u8],
        teacher: Option<&[f32]>,
    ) -> Result<StepTrace> {
        let rows = y.len();
        if rows > self.batch {
            return Err(TrainGpuError::Input(format!(
                "{rows} rows do not fit a batch of {}",
                self.batch
            )));
        }
        let val = self.val.take();
        self.upload_train_set(x, y, teacher)?;
        let order: Vec<usize> = (0..rows).collect();
        let stats = self.run_epoch(&order);
        self.val = val;
        self.plans.clear();
        let stats = stats?.train;
        let input = self.read(&self.acts[0].clone(), rows * self.tensor_len[0])?;
        let placed = self.placed.clone();
        let mut outputs = Vec::new();
        let mut input_grads = Vec::new();
        for (i, p) in placed.iter().enumerate() {
            let len = rows * self.tensor_len[p.output];
            outputs.push(self.read(&self.acts[p.output].clone(), len)?);
            input_grads.push(if i > 0 {
                let len = rows * self.tensor_len[p.input];
                Some(self.read(&self.grads[p.input].clone(), len)?)
            } else {
                None
            });
        }
        let last = self.grads.len() - 1;
        let logits_grad = self.read(&self.grads[last].clone(), rows * self.model.classes)?;
        let param_grads = self.read_pairs(|p| &p.grads)?;
        let params_after = self.params()?;
        Ok(StepTrace {
            input,
            outputs,
            input_grads,
            logits_grad,
            param_grads,
            stats,
            params_after,
        })
    }
}

fn pool_words(p: &Placed, rows: usize) -> Result<Vec<u32>> {
    let (
        TShape::Seq {
            channels,
            time: t_in,
        },
        out,
    ) = (p.in_shape, p.out_shape)
    else {
        return Err(TrainGpuError::Input("pooling needs a sequence".into()));
    };
    let (kernel, stride, op, t_out) = match (p.desc.clone(), out) {
        (LayerDesc::MaxPool1d { kernel, stride }, TShape::Seq { time, .. }) => {
            (kernel, stride, 0, time)
        }
        (LayerDesc::AvgPool1d { kernel, stride }, TShape::Seq { time, .. }) => {
            (kernel, stride, 1, time)
        }
        _ => (t_in, 1, 2, 1),
    };
    Ok(vec![
        u32_of(rows * channels, "pool lanes")?,
        u32_of(t_in, "time")?,
        u32_of(t_out, "time")?,
        u32_of(kernel, "kernel")?,
        u32_of(stride, "stride")?,
        op,
    ])
}

/// Computes every layer's shapes and assigns activation buffers (flatten reuses its input's).
fn place(model: &ModelDesc) -> Result<Vec<Placed>> {
    let mut shape = if model.time_steps > 1 {
        TShape::Seq {
            channels: model.features,
            time: model.time_steps,
        }
    } else {
        TShape::Flat(model.features)
    };
    if model.features == 0 || model.time_steps == 0 || model.classes == 0 {
        return Err(TrainGpuError::Input(
            "the model needs at least one time step, feature and class".into(),
        ));
    }
    let mut tensor = 0usize;
    let mut params = 0usize;
    let mut out = Vec::new();
    for (index, desc) in model.layers.iter().enumerate() {
        let bad = |reason: String| TrainGpuError::Layer {
            index,
            kind: desc.kind().into(),
            reason,
        };
        let next = match (desc, shape) {
            (LayerDesc::Dense { inputs, outputs }, TShape::Flat(n)) => {
                if *inputs != n || *outputs == 0 {
                    return Err(bad(format!("takes {inputs} inputs, gets {n}")));
                }
                TShape::Flat(*outputs)
            }
            (
                LayerDesc::Conv1d {
                    in_channels,
                    out_channels,
                    kernel,
                    stride,
                    dilation,
                    pad_left,
                },
                TShape::Seq { channels, time },
            ) => {
                if *in_channels != channels
                    || *out_channels == 0
                    || *kernel == 0
                    || *stride == 0
                    || *dilation == 0
                {
                    return Err(bad(format!(
                        "takes {in_channels} channels (kernel {kernel}, stride {stride}, dilation {dilation}), gets {channels}"
                    )));
                }
                let span = dilation * (kernel - 1) + 1;
                let padded = time + pad_left;
                if padded < span {
                    return Err(bad(format!(
                        "{time} steps are shorter than the kernel span {span}"
                    )));
                }
                TShape::Seq {
                    channels: *out_channels,
                    time: (padded - span) / stride + 1,
                }
            }
            (LayerDesc::Activation(_), s) => s,
            (
                LayerDesc::MaxPool1d { kernel, stride } | LayerDesc::AvgPool1d { kernel, stride },
                TShape::Seq { channels, time },
            ) => {
                if *kernel == 0 || *stride == 0 || *kernel > time {
                    return Err(bad(format!(
                        "window {kernel} / stride {stride} over {time} steps"
                    )));
                }
                TShape::Seq {
                    channels,
                    time: (time - kernel) / stride + 1,
                }
            }
            (LayerDesc::GlobalAvgPool, TShape::Seq { channels, .. }) => TShape::Flat(channels),
            (LayerDesc::Flatten, s) => TShape::Flat(s.len()),
            (_, TShape::Flat(n)) => {
                return Err(bad(format!("needs a sequence, gets a vector of {n}")));
            }
            (LayerDesc::Dense { .. }, TShape::Seq { channels, time }) => {
                return Err(bad(format!(
                    "needs a vector, gets a sequence of {channels} x {time} (add a flatten layer)"
                )));
            }
        };
        let input = tensor;
        if !matches!(desc, LayerDesc::Flatten) {
            tensor += 1;
        }
        let param = desc.has_params().then(|| {
            params += 1;
            params - 1
        });
        out.push(Placed {
            desc: desc.clone(),
            input,
            output: tensor,
            in_shape: shape,
            out_shape: next,
            param,
        });
        shape = next;
    }
    if out.is_empty() {
        return Err(TrainGpuError::Input("the model has no layers".into()));
    }
    Ok(out)
}
