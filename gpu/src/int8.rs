//! Batched int8 evaluation of a tickq blob on the GPU, bit-exact with `tickq-core`.
//!
//! [`Int8Evaluator::new`] loads the blob with `tickq-core`, decodes its parameters into their logical form
//! ([`tickq_core::decode`]) and uploads them once: dense weight rows packed four int8 values per word (read back
//! with `extractBits`), layers in the sparse formats (sparse, N:M, columns, packed) as CSR lists of their
//! non-zero weights, per-channel biases and
//! multipliers, and lookup tables.
//! [`Int8Evaluator::evaluate`] then quantizes the f32 features on the CPU with the blob's own input quantizer
//! (the one floating-point step, kept on the CPU so that it stays bit-exact), uploads the int8 inputs, records one
//! dispatch per layer for a whole batch, and reads back the int8 logits.
//!
//! Every output element is computed by one invocation with integer arithmetic only; the requantization emulates
//! core's i64 product exactly with 32-bit limbs (`shaders/int8.wgsl`). So the logits equal
//! [`Session::run`](tickq_core::Session::run)'s for every sample.
//! Buffers live in [`BufferPool`]s, so a run allocates during its first batch and then reuses them.
//!
//! Dynamically quantized blobs run too: the CPU quantizer also yields each sample's exponent, every buffer
//! carries the batch's exponents after its mantissas, and a dynamic Dense is two dispatches (the per-channel
//! values, then per sample the shift that brings them into int8 and the new exponent).

use bytemuck::{Pod, Zeroable};
use tickq_core::encode::OpSpec;
use tickq_core::{LayerKind, Model, Padding, WeightLayout};

use crate::buffers::{Binding, BufferPool, Kernel, grid};
use crate::context::GpuContext;
use crate::error::GpuError;

/// The WGSL source of the int8 kernels.
pub const SHADER: &str = include_str!("shaders/int8.wgsl");

/// Invocations per workgroup in every int8 kernel (the shader's `WG`).
const WORKGROUP: u32 = 64;

/// The binding layout every int8 kernel shares (see the shader's header).
const BINDINGS: [Binding; 6] = [
    Binding::Uniform,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::Read,
    Binding::ReadWrite,
];

/// Samples per batch unless the caller or the device's limits ask for fewer.
pub const DEFAULT_BATCH: usize = 8192;

/// The shader's `P`: one layer's shapes and quantization, as a uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
struct Params {
    n: u32,
    in_t: u32,
    in_c: u32,
    out_t: u32,
    out_c: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad_rows: u32,
    row_words: u32,
    in_zp: i32,
    in_b_zp: i32,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
    mult: i32,
    shift: u32,
    wa: i32,
    wb: i32,
    total: u32,
    bias_exp: i32,
    pad: [u32; 3],
}

/// Which entry point a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Conv,
    Dense4,
    ConvSparse,
    Lut,
    MaxPool,
    AvgPool,
    Add,
    /// A dynamically quantized Dense: `dense_dyn` into a scratch buffer, then `dense_dyn_round` per sample.
    DenseDyn,
    /// No kernel: the output is the input buffer (same time-major order).
    Alias,
}

/// One layer as the GPU runs it.
#[derive(Debug)]
struct GpuLayer {
    op: Op,
    /// The activation slot of the first and second inputs, and of the output.
    input: usize,
    input_b: usize,
    output: usize,
    /// Output elements per sample.
    out_len: usize,
    params: Params,
    weights: Option<wgpu::Buffer>,
    channels: Option<wgpu::Buffer>,
}

/// The compiled int8 kernels.
#[derive(Debug)]
struct Kernels {
    conv: Kernel,
    dense4: Kernel,
    conv_sparse: Kernel,
    lut: Kernel,
    max_pool: Kernel,
    avg_pool: Kernel,
    add: Kernel,
    dense_dyn: Kernel,
    dense_dyn_round: Kernel,
}

impl Kernels {
    fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let k = |entry: &str| Kernel::new(ctx, &format!("int8.{entry}"), SHADER, entry, &BINDINGS);
        Ok(Self {
            conv: k("conv")?,
            dense4: k("dense4")?,
            conv_sparse: k("conv_sparse")?,
            lut: k("lut")?,
            max_pool: k("max_pool")?,
            avg_pool: k("avg_pool")?,
            add: k("add")?,
            dense_dyn: k("dense_dyn")?,
            dense_dyn_round: k("dense_dyn_round")?,
        })
    }

    fn get(&self, op: Op) -> Option<&Kernel> {
        Some(match op {
            Op::Conv => &self.conv,
            Op::Dense4 => &self.dense4,
            Op::ConvSparse => &self.conv_sparse,
            Op::Lut => &self.lut,
            Op::MaxPool => &self.max_pool,
            Op::AvgPool => &self.avg_pool,
            Op::Add => &self.add,
            Op::DenseDyn => &self.dense_dyn,
            Op::Alias => return None,
        })
    }
}

/// A blob ready to evaluate on the GPU.
///
/// ```no_run
/// // no_run: needs a GPU adapter and a blob file.
/// let ctx = tickq_gpu::GpuContext::new()?;
/// let blob = std::fs::read("model.tqb")?;
/// let mut eval = tickq_gpu::Int8Evaluator::new(&ctx, &blob)?;
/// let features = vec![0.0f32; 2 * eval.input_len()];
/// let logits = eval.evaluate(&features, 2)?;
/// assert_eq!(logits.len(), 2 * eval.classes());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Int8Evaluator {
    ctx: GpuContext,
    blob: Vec<u8>,
    input_len: usize,
    classes: usize,
    layers: Vec<GpuLayer>,
    kernels: Kernels,
    /// Weights, tables and channel data: uploaded once.
    constants: BufferPool,
    /// Activations, inputs, uniforms and staging: reused batch after batch.
    batch_pool: BufferPool,
    /// The largest per-sample activation of any layer, in elements.
    max_elems: usize,
    batch: usize,
    /// A dynamically quantized blob: every buffer carries one exponent per sample after its values.
    dynamic: bool,
}

impl Int8Evaluator {
    /// Loads `blob`, checks that the GPU can run every layer, uploads the parameters and compiles the kernels.
    ///
    /// # Errors
    ///
    /// [`GpuError::Blob`] when the blob does not load, [`GpuError::Unsupported`] naming a layer the GPU path
    /// cannot run, and wgpu failures.
    pub fn new(ctx: &GpuContext, blob: &[u8]) -> Result<Self, GpuError> {
        let model = Model::load(blob)?;
        let spec = tickq_core::decode::decode(&model);
        let infos: Vec<_> = model.layers().collect();
        let mut constants = BufferPool::new(ctx);
        let mut layers = Vec::with_capacity(infos.len());
        // Slot of each layer's output; layer 0's slot holds the uploaded int8 input.
        let mut slot_of: Vec<usize> = Vec::with_capacity(infos.len());
        let mut max_elems = 1usize;
        for (i, (info, layer)) in infos.iter().zip(&spec.layers).enumerate() {
            let (out_t, out_c) = info.out_shape;
            let (in_t, in_c) = info.in_shape;
            max_elems = max_elems.max(out_t * out_c);
            let input = info.input.unwrap_or(0);
            let in_slot = slot_of.get(input).copied().unwrap_or(0);
            let zp_of = |j: Option<usize>| {
                j.and_then(|j| infos.get(j))
                    .map_or(0, |l| i32::from(l.out_zero_point))
            };
            let mut params = Params {
                in_t: in_t as u32,
                in_c: in_c as u32,
                out_t: out_t as u32,
                out_c: out_c as u32,
                kernel: 1,
                stride: 1,
                dilation: 1,
                in_zp: zp_of(info.input),
                in_b_zp: zp_of(info.input_b),
                out_zp: i32::from(layer.out_zero_point),
                act_min: i32::from(layer.act_min),
                act_max: i32::from(layer.act_max),
                ..Params::default()
            };
            let unsupported = |reason: &str| GpuError::Unsupported {
                layer: i,
                kind: info.kind.name().to_string(),
                reason: reason.to_string(),
            };
            let mut weights = None;
            let mut channels = None;
            let mut input_b = 0;
            let op = match &layer.op {
                OpSpec::Quantize { .. } => {
                    if i != 0 {
                        return Err(unsupported("the input quantizer must be layer 0"));
                    }
                    slot_of.push(0);
                    continue;
                }
                OpSpec::Dense {
                    weights: w,
                    bias,
                    requant,
                    ..
                }
                | OpSpec::Conv1d {
                    weights: w,
                    bias,
                    requant,
                    ..
                } => {
                    if let OpSpec::Conv1d {
                        kernel,
                        stride,
                        dilation,
                        padding,
                        ..
                    } = &layer.op
                    {
                        params.kernel = *kernel as u32;
                        params.stride = *stride as u32;
                        params.dilation = *dilation as u32;
                        if *padding == Padding::Causal {
                            params.pad_rows = (*dilation * (*kernel - 1)) as u32;
                        }
                    }
                    let row_len = w.len() / out_c.max(1);
                    // Formats that store only the non-zero weights run as CSR lists; dense ones as packed rows.
                    let sparse = matches!(
                        info.weight_format,
                        Some(
                            WeightLayout::Sparse
                                | WeightLayout::NM { .. }
                                | WeightLayout::Columns
                                | WeightLayout::Packed
                        )
                    ) && layer.dynamic.is_none();
                    let mut chan = Vec::with_capacity(8 * out_c);
                    let label = format!("layer{i}");
                    let mut first = 0usize;
                    let mut entries: Vec<u32> = Vec::new();
                    for (o, row) in w.chunks_exact(row_len.max(1)).enumerate() {
                        if sparse {
                            for (j, &v) in row.iter().enumerate() {
                                if v != 0 {
                                    let (tap, c) = (j / in_c.max(1), j % in_c.max(1));
                                    entries.push(((tap as u32) << 16) | c as u32);
                                    entries.push(i32::from(v) as u32);
                                }
                            }
                        }
                        let end = entries.len() / 2;
                        let m = requant
                            .get(o)
                            .ok_or_else(|| unsupported("missing multiplier"))?;
                        chan.extend_from_slice(&[
                            bias.get(o).copied().unwrap_or(0),
                            m.multiplier(),
                            i32::from(m.right_shift()),
                            first as i32,
                            end as i32,
                            0,
                            0,
                            0,
                        ]);
                        first = end;
                    }
                    channels = Some(constants.upload(&format!("{label}.channels"), &chan)?);
                    if sparse {
                        if entries.is_empty() {
                            entries.extend_from_slice(&[0, 0]);
                        }
                        weights = Some(constants.upload(&format!("{label}.csr"), &entries)?);
                        Op::ConvSparse
                    } else {
                        let row_words = row_len.div_ceil(4);
                        params.row_words = row_words as u32;
                        let mut packed = vec![0u32; row_words * out_c];
                        for (row, dst) in w
                            .chunks_exact(row_len.max(1))
                            .zip(packed.chunks_exact_mut(row_words.max(1)))
                        {
                            for (j, &v) in row.iter().enumerate() {
                                dst[j / 4] |= u32::from(v as u8) << (8 * (j % 4));
                            }
                        }
                        weights = Some(constants.upload(&format!("{label}.weights"), &packed)?);
                        if let Some(bias_exp) = layer.dynamic {
                            // The dynamic Conv1d kernel (one shift over the whole output) has no shader yet.
                            if info.kind != LayerKind::Dense {
                                return Err(unsupported("dynamic quantization of a convolution"));
                            }
                            params.bias_exp = i32::from(bias_exp);
                            Op::DenseDyn
                        } else if info.kind == LayerKind::Dense {
                            Op::Dense4
                        } else {
                            Op::Conv
                        }
                    }
                }
                OpSpec::Lut { table } => {
                    let t: Vec<i32> = table.iter().map(|&v| i32::from(v)).collect();
                    weights = Some(constants.upload(&format!("layer{i}.table"), &t)?);
                    Op::Lut
                }
                OpSpec::MaxPool1d { .. }
                | OpSpec::AvgPool1d { .. }
                | OpSpec::GlobalAvgPool { .. }
                    if layer.dynamic.is_some() =>
                {
                    // The pooling shaders do not carry the per-sample exponents to their output buffer.
                    return Err(unsupported("dynamic quantization of a pooling layer"));
                }
                OpSpec::MaxPool1d { kernel, stride } => {
                    params.kernel = *kernel as u32;
                    params.stride = *stride as u32;
                    Op::MaxPool
                }
                OpSpec::AvgPool1d {
                    kernel,
                    stride,
                    requant,
                } => {
                    params.kernel = *kernel as u32;
                    params.stride = *stride as u32;
                    params.mult = requant.multiplier();
                    params.shift = u32::from(requant.right_shift());
                    Op::AvgPool
                }
                OpSpec::GlobalAvgPool { requant } => {
                    params.kernel = in_t as u32;
                    params.stride = 1;
                    params.mult = requant.multiplier();
                    params.shift = u32::from(requant.right_shift());
                    Op::AvgPool
                }
                OpSpec::Flatten => Op::Alias,
                OpSpec::Add {
                    other,
                    wa,
                    wb,
                    requant,
                } => {
                    params.wa = *wa;
                    params.wb = *wb;
                    params.mult = requant.multiplier();
                    params.shift = u32::from(requant.right_shift());
                    input_b = slot_of.get(*other).copied().unwrap_or(0);
                    Op::Add
                }
            };
            let output = if op == Op::Alias { in_slot } else { i };
            slot_of.push(output);
            layers.push(GpuLayer {
                op,
                input: in_slot,
                input_b,
                output,
                out_len: out_t * out_c,
                params,
                weights,
                channels,
            });
        }
        let batch = Self::batch_limit(ctx, max_elems + 1).min(DEFAULT_BATCH);
        Ok(Self {
            ctx: ctx.clone(),
            blob: blob.to_vec(),
            input_len: model.input_len(),
            classes: model.classes(),
            layers,
            kernels: Kernels::new(ctx)?,
            constants,
            batch_pool: BufferPool::new(ctx),
            max_elems: max_elems.max(model.input_len()) + 1,
            batch,
            dynamic: model.is_dynamic(),
        })
    }

    /// The most samples whose largest activation fits one storage binding.
    fn batch_limit(ctx: &GpuContext, elems: usize) -> usize {
        let limit = ctx
            .limits()
            .max_storage_buffer_binding_size
            .min(ctx.limits().max_buffer_size);
        (limit / (4 * elems.max(1) as u64)).max(1) as usize
    }

    /// f32 values per sample (the blob's `T * F`).
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Logits per sample.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Samples per GPU batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Sets the samples per GPU batch (at least 1, at most what the device's limits allow).
    pub fn set_batch_size(&mut self, batch: usize) {
        self.batch = batch
            .max(1)
            .min(Self::batch_limit(&self.ctx, self.max_elems));
    }

    /// Bytes this evaluator holds on the GPU (parameters plus batch buffers).
    pub fn bytes_on_gpu(&self) -> u64 {
        self.constants.bytes_on_gpu() + self.batch_pool.bytes_on_gpu()
    }

    /// The context the evaluator runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Evaluates `samples` samples of [`Int8Evaluator::input_len`] f32 features each (time-major, one sample
    /// after the other) and returns `samples * classes` int8 logits, sample-major.
    ///
    /// # Errors
    ///
    /// [`GpuError::Shape`] when `features` does not hold exactly `samples` samples, and wgpu failures.
    pub fn evaluate(&mut self, features: &[f32], samples: usize) -> Result<Vec<i8>, GpuError> {
        Ok(self.evaluate_with_exponents(features, samples)?.0)
    }

    /// [`Int8Evaluator::evaluate`] plus each sample's logit exponent, as
    /// [`Prediction::exponent`](tickq_core::Prediction::exponent) gives it: for a dynamically quantized blob a
    /// score is `q * out_scale * 2^exponent`; for a static one the exponent is 0.
    ///
    /// # Errors
    ///
    /// As [`Int8Evaluator::evaluate`].
    pub fn evaluate_with_exponents(
        &mut self,
        features: &[f32],
        samples: usize,
    ) -> Result<(Vec<i8>, Vec<i32>), GpuError> {
        if features.len() != samples * self.input_len {
            return Err(GpuError::Shape(format!(
                "{} features for {samples} samples of {} values",
                features.len(),
                self.input_len
            )));
        }
        let (inputs, exponents) = Model::load(&self.blob)?.quantize_inputs_dynamic(features);
        self.run(&inputs, &exponents, samples)
    }

    /// Like [`Int8Evaluator::evaluate`] from int8 inputs, the way
    /// [`Session::run_quantized`](tickq_core::Session::run_quantized) takes them (for a dynamic blob: mantissas
    /// with exponent 0).
    ///
    /// # Errors
    ///
    /// As [`Int8Evaluator::evaluate`].
    pub fn evaluate_quantized(
        &mut self,
        inputs: &[i8],
        samples: usize,
    ) -> Result<Vec<i8>, GpuError> {
        if inputs.len() != samples * self.input_len {
            return Err(GpuError::Shape(format!(
                "{} int8 inputs for {samples} samples of {} values",
                inputs.len(),
                self.input_len
            )));
        }
        Ok(self.run(inputs, &vec![0; samples], samples)?.0)
    }

    fn run(
        &mut self,
        inputs: &[i8],
        exponents: &[i32],
        samples: usize,
    ) -> Result<(Vec<i8>, Vec<i32>), GpuError> {
        let mut logits = Vec::with_capacity(samples * self.classes);
        let mut out_exponents = Vec::with_capacity(samples);
        let per = self.input_len.max(1);
        for (chunk, exps) in inputs
            .chunks(self.batch * per)
            .zip(exponents.chunks(self.batch))
        {
            let n = chunk.len() / per;
            self.run_batch(chunk, exps, n, &mut logits, &mut out_exponents)?;
        }
        Ok((logits, out_exponents))
    }

    fn run_batch(
        &mut self,
        inputs: &[i8],
        exponents: &[i32],
        n: usize,
        logits: &mut Vec<i8>,
        out_exponents: &mut Vec<i32>,
    ) -> Result<(), GpuError> {
        // A dynamic model's buffers hold the batch's mantissas and then one exponent per sample.
        let mut widened: Vec<i32> = inputs.iter().map(|&v| i32::from(v)).collect();
        if self.dynamic {
            widened.extend_from_slice(exponents);
        }
        let mut slots: Vec<Option<wgpu::Buffer>> = vec![None; self.layers.len() + 1];
        slots[0] = Some(self.batch_pool.upload("act0", &widened)?);
        let dummy = self.batch_pool.storage("dummy", 256)?;
        let mut encoder =
            self.ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("int8.batch"),
                });
        let mut last = 0usize;
        let slot = |slots: &[Option<wgpu::Buffer>], i: usize| {
            slots
                .get(i)
                .and_then(Clone::clone)
                .ok_or_else(|| GpuError::Shape(format!("layer input slot {i} not computed")))
        };
        for (li, layer) in self.layers.iter().enumerate() {
            last = layer.output;
            let Some(kernel) = self.kernels.get(layer.op) else {
                continue;
            };
            let total = (n * layer.out_len) as u64;
            let params = Params {
                n: n as u32,
                total: total as u32,
                ..layer.params
            };
            let uniform = self.batch_pool.uniform(&format!("params{li}"), &params)?;
            let extra = if self.dynamic { n as u64 } else { 0 };
            let out = self
                .batch_pool
                .storage(&format!("act{}", layer.output), 4 * (total + extra))?;
            let input = slot(&slots, layer.input)?;
            let w = layer.weights.as_ref().unwrap_or(&dummy);
            let c = layer.channels.as_ref().unwrap_or(&dummy);
            if layer.op == Op::DenseDyn {
                let scratch = self
                    .batch_pool
                    .storage(&format!("scratch{li}"), 4 * total)?;
                kernel.dispatch(
                    &self.ctx,
                    &mut encoder,
                    &[&uniform, &input, &input, w, c, &scratch],
                    grid(&self.ctx, total, WORKGROUP),
                )?;
                self.kernels.dense_dyn_round.dispatch(
                    &self.ctx,
                    &mut encoder,
                    &[&uniform, &scratch, &input, &dummy, &dummy, &out],
                    grid(&self.ctx, n as u64, WORKGROUP),
                )?;
            } else {
                let input_b = if layer.op == Op::Add {
                    slot(&slots, layer.input_b)?
                } else {
                    dummy.clone()
                };
                kernel.dispatch(
                    &self.ctx,
                    &mut encoder,
                    &[&uniform, &input, &input_b, w, c, &out],
                    grid(&self.ctx, total, WORKGROUP),
                )?;
            }
            if let Some(s) = slots.get_mut(layer.output) {
                *s = Some(out);
            }
        }
        self.ctx.queue().submit([encoder.finish()]);
        let out = slot(&slots, last)?;
        let classes = n * self.classes;
        if self.dynamic {
            // The logits and, after the batch's logits, their exponents.
            let values: Vec<i32> = self.batch_pool.read_back(&out, classes + n)?;
            let (q, e) = values.split_at(classes.min(values.len()));
            logits.extend(q.iter().map(|&v| v as i8));
            out_exponents.extend_from_slice(e);
        } else {
            let values: Vec<i32> = self.batch_pool.read_back(&out, classes)?;
            logits.extend(values.into_iter().map(|v| v as i8));
            out_exponents.extend(std::iter::repeat_n(0, n));
        }
        Ok(())
    }
}
