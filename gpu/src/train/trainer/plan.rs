//! Building a step's plan: the fixed list of dispatches one batch runs, in the order the module docs of
//! [`crate::train`] give (gather, forward, loss, backward, optimizer, advance).
//!
//! Every dispatch takes its uniform block as a typed struct from [`crate::train::params`] and its other
//! buffers from the trainer's named fields; [`PlanBuilder`] writes the block and binds it.

use super::buffers::{ConvScratch, Layer, LayerOp, Network, ParamBufs, Part, StepBufs};
use super::data::DataSet;
use super::place::{ConvGeom, PoolGeom};
use super::{GpuTrainer, Phase, Result, u32_of};
use crate::buffers::BufferPool;
use crate::context::GpuContext;
use crate::train::desc::{Activation, LossDesc, ModelDesc, OptimizerDesc, TrainGpuError};
use crate::train::kernels::{K, Kernels, Op};
use crate::train::params::{
    ActParams, ColSumParams, ConvParams, ConvReorderParams, GatherXParams, GatherYParams,
    LossParams, MatmulParams, OptimParams, PoolParams, Uniform,
};

/// Collects one plan's dispatches, each with its own uniform buffer.
struct PlanBuilder<'a> {
    ctx: &'a GpuContext,
    kernels: &'a Kernels,
    pool: &'a mut BufferPool,
    /// Prefix of the plan's uniform buffer names (`train.u.{phase}.{rows}`), numbered from 1 in order.
    tag: String,
    ops: Vec<Op>,
}

impl PlanBuilder<'_> {
    /// Writes `params` into this dispatch's uniform buffer.
    fn uniform<P: Uniform>(&mut self, k: K, params: &P) -> Result<wgpu::Buffer> {
        if !P::KERNELS.contains(&k) {
            return Err(crate::GpuError::Shape(format!(
                "kernel {k:?} does not take the uniform block of {:?}",
                P::KERNELS
            ))
            .into());
        }
        let name = format!("{}.{}", self.tag, self.ops.len() + 1);
        Ok(self.pool.uniform(&name, params)?)
    }

    /// Adds kernel `k` over `invocations` one-dimensional invocations, binding `params` and then `buffers`.
    fn dispatch<P: Uniform>(
        &mut self,
        k: K,
        params: &P,
        buffers: &[&wgpu::Buffer],
        invocations: usize,
    ) -> Result<()> {
        let u = self.uniform(k, params)?;
        let bound: Vec<&wgpu::Buffer> =
            std::iter::once(&u).chain(buffers.iter().copied()).collect();
        let op = self
            .kernels
            .op_1d(self.ctx, k, &bound, invocations as u64)?;
        self.ops.push(op);
        Ok(())
    }

    /// Adds `c = a * b (+ bias)`, one workgroup per 64 x 64 tile of `c`.
    fn matmul(
        &mut self,
        params: &MatmulParams,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        c: &wgpu::Buffer,
    ) -> Result<()> {
        let u = self.uniform(K::Matmul, params)?;
        let groups = [params.n.div_ceil(64), params.m.div_ceil(64), 1];
        let op = self
            .kernels
            .op(self.ctx, K::Matmul, &[&u, a, b, bias, c], groups)?;
        self.ops.push(op);
        Ok(())
    }
}

/// What every step function reads: the model, its buffers, the step buffers, and the rows of this plan.
struct Step<'a, 'b> {
    b: PlanBuilder<'a>,
    net: &'b Network,
    bufs: &'b StepBufs,
    phase: Phase,
    /// Rows in this step.
    rows: usize,
    /// `rows` as the kernels take it.
    r32: u32,
}

impl GpuTrainer {
    /// Builds the dispatches of one step of `phase` over `rows` rows.
    pub(super) fn build_plan(&mut self, phase: Phase, rows: usize) -> Result<Vec<Op>> {
        let set = match phase {
            Phase::Train => self.train.as_ref(),
            Phase::Eval => self.val.as_ref(),
        }
        .ok_or_else(|| TrainGpuError::Input(format!("no {phase:?} set uploaded")))?;
        let mut step = Step {
            b: PlanBuilder {
                ctx: &self.ctx,
                kernels: &self.kernels,
                pool: &mut self.pool,
                tag: format!("train.u.{phase:?}.{rows}"),
                ops: Vec::new(),
            },
            net: &self.net,
            bufs: &self.bufs,
            phase,
            rows,
            r32: u32_of(rows, "batch size")?,
        };
        step.gather(set, &self.model, self.batch)?;
        for layer in &self.net.layers {
            step.forward(layer)?;
        }
        step.loss(&self.loss, &self.model, &self.class_w)?;
        if phase == Phase::Train {
            for (i, layer) in self.net.layers.iter().enumerate().rev() {
                step.backward(layer, i > 0)?;
            }
            let table = self.table.as_ref().ok_or_else(|| {
                TrainGpuError::Input("no step table: run_epoch uploads it before planning".into())
            })?;
            step.optimizer(&self.optimizer, table)?;
        }
        step.advance()?;
        Ok(step.b.ops)
    }
}

impl<'b> Step<'_, 'b> {
    /// The step cursor of this plan's pass.
    fn cursor(&self) -> &'b wgpu::Buffer {
        self.bufs.cursor.get(self.phase)
    }

    /// Gathers the batch's rows, labels and teacher logits from `set` through the epoch's order.
    fn gather(&mut self, set: &DataSet, model: &ModelDesc, batch: usize) -> Result<()> {
        let in_len = self.net.tensor_len[0];
        let batch = u32_of(batch, "batch size")?;
        let classes = model.classes;
        let gx = GatherXParams {
            rows: self.r32,
            in_len: u32_of(in_len, "input width")?,
            time: u32_of(model.time_steps, "time steps")?,
            features: u32_of(model.features, "features")?,
            batch,
            pad0: 0,
            pad1: 0,
            pad2: 0,
        };
        let cursor = self.cursor();
        let bound = [cursor, &set.order, &set.x, &self.net.acts[0]];
        self.b
            .dispatch(K::GatherX, &gx, &bound, self.rows * in_len)?;
        let gy = GatherYParams {
            rows: self.r32,
            classes: u32_of(classes, "class count")?,
            batch,
            pad0: 0,
        };
        let teacher = set.teacher.as_ref().unwrap_or(&self.bufs.unused_read);
        let bound = [
            cursor,
            &set.order,
            &set.y,
            teacher,
            &self.bufs.batch_labels,
            &self.bufs.batch_teacher,
        ];
        self.b
            .dispatch(K::GatherY, &gy, &bound, self.rows * classes)
    }

    /// The forward kernels of one layer.
    fn forward(&mut self, layer: &Layer) -> Result<()> {
        let x = &self.net.acts[layer.input];
        let y = &self.net.acts[layer.output];
        match &layer.op {
            &LayerOp::Dense {
                inputs,
                outputs,
                param,
            } => {
                // y[s, o] = sum_i x[s, i] W[o, i] + b[o]
                let (i32_, o32) = (u32_of(inputs, "width")?, u32_of(outputs, "width")?);
                let mm = MatmulParams {
                    m: self.r32,
                    n: o32,
                    k: i32_,
                    a_row: i32_,
                    a_col: 1,
                    b_row: 1,
                    b_col: i32_,
                    flags: MatmulParams::ADD_BIAS,
                };
                let p = &self.net.params[param].values;
                self.b.matmul(&mm, x, &p.weight, &p.bias, y)
            }
            LayerOp::Conv1d {
                geom,
                param,
                scratch,
            } => {
                let net = self.net;
                self.conv_forward(layer, geom, &net.params[*param], scratch)
            }
            &LayerOp::Activation(a) => {
                let (params, len) = self.act_params(a, layer)?;
                self.b.dispatch(K::ActFwd, &params, &[x, y], len)
            }
            LayerOp::Pool { geom, arg } => {
                let params = pool_params(self.rows, geom)?;
                let count = self.rows * layer.out_len;
                self.b.dispatch(K::PoolFwd, &params, &[x, y, arg], count)
            }
            LayerOp::Flatten => Ok(()),
        }
    }

    /// The loss over the logits and its gradient, added to this pass's statistics. Evaluation always uses
    /// the class-weighted cross-entropy.
    fn loss(&mut self, loss: &LossDesc, model: &ModelDesc, class_w: &wgpu::Buffer) -> Result<()> {
        let (mode, alpha, temperature) = match (self.phase, loss) {
            (Phase::Train, LossDesc::Distill { alpha, temperature }) => {
                (LossParams::DISTILL, *alpha, *temperature)
            }
            _ => (LossParams::CROSS_ENTROPY, 0.0, 1.0),
        };
        let params = LossParams {
            rows: self.r32,
            classes: u32_of(model.classes, "class count")?,
            mode,
            pad0: 0,
            alpha,
            temperature,
            pad1: 0.0,
            pad2: 0.0,
        };
        let u = self.b.uniform(K::Loss, &params)?;
        let (logits, glogits) = self.net.logits();
        let bound = [
            &u,
            logits,
            &self.bufs.batch_labels,
            &self.bufs.batch_teacher,
            class_w,
            self.cursor(),
            glogits,
            self.bufs.stats.get(self.phase),
        ];
        // One workgroup, so the batch's sums run in a fixed order.
        let op = self.b.kernels.op(self.b.ctx, K::Loss, &bound, [1, 1, 1])?;
        self.b.ops.push(op);
        Ok(())
    }

    /// The backward kernels of one layer: its parameter gradients, and its input gradient when `need_dx`
    /// (every layer but the first).
    fn backward(&mut self, layer: &Layer, need_dx: bool) -> Result<()> {
        match &layer.op {
            &LayerOp::Dense {
                inputs,
                outputs,
                param,
            } => {
                let net = self.net;
                self.dense_backward(layer, inputs, outputs, &net.params[param], need_dx)
            }
            LayerOp::Conv1d {
                geom,
                param,
                scratch,
            } => {
                let net = self.net;
                self.conv_backward(layer, geom, &net.params[*param], scratch, need_dx)
            }
            &LayerOp::Activation(a) if need_dx => {
                // Tanh and Sigmoid differentiate through their output, the others through their input.
                let cached = if a.uses_output() {
                    &self.net.acts[layer.output]
                } else {
                    &self.net.acts[layer.input]
                };
                let (params, len) = self.act_params(a, layer)?;
                let dy = &self.net.grads[layer.output];
                let dx = &self.net.grads[layer.input];
                self.b.dispatch(K::ActBwd, &params, &[dy, cached, dx], len)
            }
            LayerOp::Pool { geom, arg } if need_dx => {
                let params = pool_params(self.rows, geom)?;
                let dy = &self.net.grads[layer.output];
                let dx = &self.net.grads[layer.input];
                let count = self.rows * layer.in_len;
                self.b.dispatch(K::PoolBwd, &params, &[dy, arg, dx], count)
            }
            LayerOp::Activation(_) | LayerOp::Pool { .. } | LayerOp::Flatten => Ok(()),
        }
    }

    /// Conv1d forward: im2col, one GEMM against the weight, and the reorder that adds the bias.
    fn conv_forward(
        &mut self,
        layer: &Layer,
        geom: &ConvGeom,
        params: &ParamBufs,
        scratch: &ConvScratch,
    ) -> Result<()> {
        let x = &self.net.acts[layer.input];
        let y = &self.net.acts[layer.output];
        let p = &params.values;
        let conv = conv_params(self.rows, geom)?;
        let invocations = self.rows * geom.t_out * geom.cols_width();
        self.b
            .dispatch(K::Im2Col, &conv, &[x, &scratch.cols], invocations)?;
        // gemm[r, o] = sum_j cols[r, j] W[o, j]
        let ck = u32_of(geom.cols_width(), "im2col width")?;
        let mm = MatmulParams {
            m: u32_of(self.rows * geom.t_out, "im2col rows")?,
            n: u32_of(geom.c_out, "channels")?,
            k: ck,
            a_row: ck,
            a_col: 1,
            b_row: 1,
            b_col: ck,
            flags: 0,
        };
        self.b.matmul(
            &mm,
            &scratch.cols,
            &p.weight,
            &self.bufs.unused_read,
            &scratch.gemm,
        )?;
        let reorder = self.conv_reorder(geom)?;
        let invocations = self.rows * geom.c_out * geom.t_out;
        self.b.dispatch(
            K::ConvOut,
            &reorder,
            &[&scratch.gemm, &p.bias, y],
            invocations,
        )
    }

    /// Conv1d backward: the output gradient reordered into the GEMM's layout, the weight and bias
    /// gradients, and (when `need_dx`) the im2col gradient gathered back into the input gradient.
    fn conv_backward(
        &mut self,
        layer: &Layer,
        geom: &ConvGeom,
        p: &ParamBufs,
        scratch: &ConvScratch,
        need_dx: bool,
    ) -> Result<()> {
        let dy = &self.net.grads[layer.output];
        let reorder = self.conv_reorder(geom)?;
        let invocations = self.rows * geom.c_out * geom.t_out;
        self.b
            .dispatch(K::ConvGrad, &reorder, &[dy, &scratch.gemm], invocations)?;
        let g2 = &scratch.gemm;
        let o32 = u32_of(geom.c_out, "channels")?;
        let ck = u32_of(geom.cols_width(), "im2col width")?;
        let m = u32_of(self.rows * geom.t_out, "im2col rows")?;
        // dW[o, j] = sum_r g2[r, o] cols[r, j]
        let dw = MatmulParams {
            m: o32,
            n: ck,
            k: m,
            a_row: 1,
            a_col: o32,
            b_row: ck,
            b_col: 1,
            flags: 0,
        };
        let unused = &self.bufs.unused_read;
        self.b
            .matmul(&dw, g2, &scratch.cols, unused, &p.grads.weight)?;
        let db = ColSumParams { rows: m, cols: o32 };
        self.b
            .dispatch(K::ColSum, &db, &[g2, &p.grads.bias], geom.c_out)?;
        if !need_dx {
            return Ok(());
        }
        // dcols[r, j] = sum_o g2[r, o] W[o, j]
        let dcols = MatmulParams {
            m,
            n: ck,
            k: o32,
            a_row: o32,
            a_col: 1,
            b_row: ck,
            b_col: 1,
            flags: 0,
        };
        self.b
            .matmul(&dcols, g2, &p.values.weight, unused, &scratch.dcols)?;
        let conv = conv_params(self.rows, geom)?;
        let dx = &self.net.grads[layer.input];
        let invocations = self.rows * geom.c_in * geom.t_in;
        self.b
            .dispatch(K::Col2Im, &conv, &[&scratch.dcols, dx], invocations)
    }

    /// The weight, bias and (when `need_dx`) input gradients of a dense layer.
    fn dense_backward(
        &mut self,
        layer: &Layer,
        inputs: usize,
        outputs: usize,
        p: &ParamBufs,
        need_dx: bool,
    ) -> Result<()> {
        let x = &self.net.acts[layer.input];
        let dy = &self.net.grads[layer.output];
        let unused = &self.bufs.unused_read;
        let (i32_, o32) = (u32_of(inputs, "width")?, u32_of(outputs, "width")?);
        // dW[o, i] = sum_s dY[s, o] X[s, i]
        let dw = MatmulParams {
            m: o32,
            n: i32_,
            k: self.r32,
            a_row: 1,
            a_col: o32,
            b_row: i32_,
            b_col: 1,
            flags: 0,
        };
        self.b.matmul(&dw, dy, x, unused, &p.grads.weight)?;
        let db = ColSumParams {
            rows: self.r32,
            cols: o32,
        };
        self.b
            .dispatch(K::ColSum, &db, &[dy, &p.grads.bias], outputs)?;
        if !need_dx {
            return Ok(());
        }
        // dX[s, i] = sum_o dY[s, o] W[o, i]
        let dx = MatmulParams {
            m: self.r32,
            n: i32_,
            k: o32,
            a_row: o32,
            a_col: 1,
            b_row: i32_,
            b_col: 1,
            flags: 0,
        };
        let gin = &self.net.grads[layer.input];
        self.b.matmul(&dx, dy, &p.values.weight, unused, gin)
    }

    /// One optimizer dispatch per weight and bias of every parameter layer, masking pruned weights.
    fn optimizer(&mut self, optimizer: &OptimizerDesc, table: &wgpu::Buffer) -> Result<()> {
        let base = optim_params(optimizer);
        for p in &self.net.params {
            for part in Part::BOTH {
                let len = p.len(part);
                let mask = p.mask.as_ref().filter(|_| part == Part::Weight);
                let params = OptimParams {
                    len: u32_of(len, "parameter count")?,
                    has_mask: u32::from(mask.is_some()),
                    ..base
                };
                let [unused_m, unused_v] = &self.bufs.unused_moments;
                let m = p.slots.first().map_or(unused_m, |s| s.get(part));
                let v = p.slots.get(1).map_or(unused_v, |s| s.get(part));
                let bound = [
                    p.values.get(part),
                    p.grads.get(part),
                    m,
                    v,
                    mask.unwrap_or(&self.bufs.unused_read),
                    table,
                    self.cursor(),
                ];
                self.b.dispatch(K::Optim, &params, &bound, len)?;
            }
        }
        Ok(())
    }

    /// Moves the step cursor on.
    fn advance(&mut self) -> Result<()> {
        let op = self
            .b
            .kernels
            .op(self.b.ctx, K::Advance, &[self.cursor()], [1, 1, 1])?;
        self.b.ops.push(op);
        Ok(())
    }

    /// The uniform block of an activation over `layer`'s batch, and its length.
    fn act_params(&self, a: Activation, layer: &Layer) -> Result<(ActParams, usize)> {
        let (op, lo, hi) = a.code();
        let len = self.rows * layer.in_len;
        let params = ActParams {
            len: u32_of(len, "activation size")?,
            op,
            lo,
            hi,
        };
        Ok((params, len))
    }

    /// The uniform block of the conv GEMM reorders (forward output, backward gradient).
    fn conv_reorder(&self, geom: &ConvGeom) -> Result<ConvReorderParams> {
        Ok(ConvReorderParams {
            rows: self.r32,
            out_ch: u32_of(geom.c_out, "channels")?,
            t_out: u32_of(geom.t_out, "time")?,
            pad0: 0,
        })
    }
}

/// The uniform block of im2col and col2im for `rows` samples.
fn conv_params(rows: usize, geom: &ConvGeom) -> Result<ConvParams> {
    Ok(ConvParams {
        rows: u32_of(rows, "batch size")?,
        c_in: u32_of(geom.c_in, "channels")?,
        t_in: u32_of(geom.t_in, "time")?,
        t_out: u32_of(geom.t_out, "time")?,
        kernel: u32_of(geom.kernel, "kernel")?,
        stride: u32_of(geom.stride, "stride")?,
        dilation: u32_of(geom.dilation, "dilation")?,
        pad: u32_of(geom.pad_left, "padding")?,
    })
}

/// The uniform block of pooling (forward and backward) for `rows` samples.
fn pool_params(rows: usize, geom: &PoolGeom) -> Result<PoolParams> {
    Ok(PoolParams {
        lanes: u32_of(rows * geom.channels, "pool lanes")?,
        t_in: u32_of(geom.t_in, "time")?,
        t_out: u32_of(geom.t_out, "time")?,
        kernel: u32_of(geom.kernel, "kernel")?,
        stride: u32_of(geom.stride, "stride")?,
        op: geom.op,
        pad0: 0,
        pad1: 0,
    })
}

/// The optimizer's hyper-parameters as the kernel takes them (`len` and `has_mask` are per tensor).
fn optim_params(optimizer: &OptimizerDesc) -> OptimParams {
    let zero = OptimParams {
        len: 0,
        kind: OptimParams::ADAM,
        has_mask: 0,
        nesterov: 0,
        lr: 0.0,
        beta1: 0.0,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: 0.0,
        momentum: 0.0,
        pad0: 0.0,
        pad1: 0.0,
    };
    match *optimizer {
        OptimizerDesc::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => OptimParams {
            kind: OptimParams::ADAM,
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            ..zero
        },
        OptimizerDesc::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
        } => OptimParams {
            kind: OptimParams::SGD,
            nesterov: u32::from(nesterov),
            lr,
            weight_decay,
            momentum,
            ..zero
        },
    }
}
