//! Running passes: the plans cached per batch size, an epoch's training steps and validation pass, a
//! standalone evaluation, and the traced single step the tests compare with the CPU.

use super::stats::{EpochStats, PassStats, StepTrace};
use super::{GpuTrainer, Phase, Result, STEPS_PER_SUBMIT};
use crate::train::desc::{OptimizerDesc, TrainGpuError};
use crate::train::kernels::Op;

impl GpuTrainer {
    /// The plan of one step of `phase` over `rows` rows, built on first use.
    fn plan(&mut self, phase: Phase, rows: usize) -> Result<Vec<Op>> {
        if let Some(p) = self.plans.get(&(phase, rows)) {
            return Ok(p.clone());
        }
        let p = self.build_plan(phase, rows)?;
        self.plans.insert((phase, rows), p.clone());
        Ok(p)
    }

    /// The plans of a pass over `rows` rows: full batches, and the short last batch if there is one.
    fn pass_plans(&mut self, phase: Phase, rows: usize) -> Result<(Vec<Op>, Option<Vec<Op>>)> {
        let full = self.plan(phase, self.batch)?;
        let tail_rows = rows % self.batch;
        let tail = if tail_rows > 0 {
            Some(self.plan(phase, tail_rows)?)
        } else {
            None
        };
        Ok((full, tail))
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
        let order_buf = self.pool.upload(
            &super::data::set_buffer_name(Phase::Train, super::data::SetBuffer::Order),
            &gather,
        )?;
        if let Some(t) = self.train.as_mut()
            && t.order != order_buf
        {
            // The pool grew the buffer: the plans must bind the new one.
            t.order = order_buf;
            self.plans.clear();
        }
        let n_steps = order.len().div_ceil(self.batch);
        let table = self.step_table(self.steps + 1, n_steps);
        let table_buf = self.pool.upload(super::STEP_TABLE, &table)?;
        if self.table.as_ref() != Some(&table_buf) {
            self.table = Some(table_buf);
            self.plans.clear();
        }
        let (full, tail) = self.pass_plans(Phase::Train, order.len())?;
        let cursor = self.bufs.cursor.train.clone();
        let stats = self.bufs.stats.train.clone();
        let mut encoder = self.encoder("tickq.train");
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
            encoder = self.encoder("tickq.train");
        }
        self.steps += n_steps as u64;
        let has_val = self.val.is_some();
        if has_val {
            encoder = self.record_eval(encoder)?;
        }
        let out = &self.bufs.stats_out;
        let bytes = (PassStats::WORDS * 4) as u64;
        encoder.copy_buffer_to_buffer(&stats, 0, out, 0, bytes);
        encoder.copy_buffer_to_buffer(&self.bufs.stats.eval, 0, out, bytes, bytes);
        self.ctx.queue().submit([encoder.finish()]);
        let out = out.clone();
        let words: Vec<u32> = self.pool.read_back(&out, 2 * PassStats::WORDS)?;
        let (train, val) = words.split_at(PassStats::WORDS.min(words.len()));
        Ok(EpochStats {
            train: PassStats::from_words(train),
            val: has_val.then(|| PassStats::from_words(val)),
        })
    }

    /// A command encoder labelled `label`.
    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Records the validation pass after whatever `encoder` holds; a streamed set submits chunk by chunk.
    fn record_eval(&mut self, mut encoder: wgpu::CommandEncoder) -> Result<wgpu::CommandEncoder> {
        let Some(val) = self.val.as_ref() else {
            return Ok(encoder);
        };
        let rows = val.rows;
        let chunk_steps = val.stream.as_ref().map(|s| s.chunk_steps);
        let (full, tail) = self.pass_plans(Phase::Eval, rows)?;
        encoder.clear_buffer(&self.bufs.cursor.eval, 0, None);
        encoder.clear_buffer(&self.bufs.stats.eval, 0, None);
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
                encoder = self.encoder("tickq.train");
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
        let encoder = self.encoder("tickq.train.eval");
        let encoder = self.record_eval(encoder)?;
        self.ctx.queue().submit([encoder.finish()]);
        let stats = self.bufs.stats.eval.clone();
        let words: Vec<u32> = self.pool.read_back(&stats, PassStats::WORDS)?;
        Ok(PassStats::from_words(&words))
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
        let acts = self.net.acts.clone();
        let grads = self.net.grads.clone();
        let len = |t: usize| rows * self.net.tensor_len[t];
        let spans: Vec<(usize, usize, usize, usize)> = self
            .net
            .layers
            .iter()
            .map(|l| (l.input, len(l.input), l.output, len(l.output)))
            .collect();
        let input_len = len(0);
        let input = self.read(&acts[0], input_len)?;
        let mut outputs = Vec::new();
        let mut input_grads = Vec::new();
        for (i, (t_in, in_len, t_out, out_len)) in spans.into_iter().enumerate() {
            outputs.push(self.read(&acts[t_out], out_len)?);
            input_grads.push(if i > 0 {
                Some(self.read(&grads[t_in], in_len)?)
            } else {
                None
            });
        }
        let logits_grad = self.read(&grads[grads.len() - 1], rows * self.model.classes)?;
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
