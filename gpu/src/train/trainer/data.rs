//! The data sets: uploaded once and kept resident, or, when too large for one buffer, kept on the host and
//! written to the GPU one chunk of whole batches at a time.

use super::{GpuTrainer, Phase, Result, STEPS_PER_SUBMIT, u32_of};
use crate::train::desc::{LossDesc, TrainGpuError};

/// A data set on the GPU.
#[derive(Debug)]
pub(super) struct DataSet {
    /// Rows in the whole set.
    pub(super) rows: usize,
    /// Features, `[rows, in_len]` (a streamed set: one chunk's rows).
    pub(super) x: wgpu::Buffer,
    /// Labels, `[rows]`.
    pub(super) y: wgpu::Buffer,
    /// Teacher logits, `[rows, classes]`, when distilling.
    pub(super) teacher: Option<wgpu::Buffer>,
    /// The order the gather kernel reads rows in ([`GpuTrainer::gather_order`]).
    pub(super) order: wgpu::Buffer,
    /// For a set too large for one GPU buffer: the host copy, streamed in chunks of whole batches.
    pub(super) stream: Option<Stream>,
}

/// A data set kept on the host and uploaded one chunk of batches at a time.
#[derive(Debug)]
pub(super) struct Stream {
    /// Steps (whole batches) per chunk.
    pub(super) chunk_steps: usize,
    x: Vec<f32>,
    y: Vec<u32>,
    teacher: Option<Vec<f32>>,
}

/// One buffer of a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SetBuffer {
    /// The features.
    X,
    /// The labels.
    Y,
    /// The teacher logits.
    Teacher,
    /// The gather order.
    Order,
}

/// The pool name of buffer `what` of `phase`'s set (`train.train.x`, `train.val.order`, ...).
pub(super) fn set_buffer_name(phase: Phase, what: SetBuffer) -> String {
    let what = match what {
        SetBuffer::X => "x",
        SetBuffer::Y => "y",
        SetBuffer::Teacher => "teacher",
        SetBuffer::Order => "order",
    };
    format!("train.{}.{what}", phase.set_name())
}

impl GpuTrainer {
    /// Checks one set against the model and puts it on the GPU, resident or streamed.
    fn upload_set(
        &mut self,
        phase: Phase,
        x: &[f32],
        y: &[u8],
        teacher: Option<&[f32]>,
    ) -> Result<DataSet> {
        let set = phase.set_name();
        let in_len = self.net.tensor_len[0];
        let classes = self.model.classes;
        let rows = y.len();
        if rows == 0 || x.len() != rows * in_len {
            return Err(TrainGpuError::Input(format!(
                "{set} set: {} values for {rows} rows of {in_len}",
                x.len()
            )));
        }
        if let Some((i, &l)) = y
            .iter()
            .enumerate()
            .find(|(_, l)| usize::from(**l) >= classes)
        {
            return Err(TrainGpuError::Input(format!(
                "{set} set: label {i} is {l}, but the model has {classes} classes"
            )));
        }
        if let Some(t) = teacher
            && t.len() != rows * classes
        {
            return Err(TrainGpuError::Input(format!(
                "{set} set: {} teacher logits for {rows} rows of {classes} classes",
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
        let name = |what| set_buffer_name(phase, what);
        if rows as u64 * row_bytes <= limit {
            let order: Vec<u32> = (0..rows as u32).collect();
            return Ok(DataSet {
                rows,
                x: self.pool.upload(&name(SetBuffer::X), x)?,
                y: self.pool.upload(&name(SetBuffer::Y), &labels)?,
                teacher: match teacher {
                    Some(t) => Some(self.pool.upload(&name(SetBuffer::Teacher), t)?),
                    None => None,
                },
                order: self.pool.upload(&name(SetBuffer::Order), &order)?,
                stream: None,
            });
        }
        let batch_bytes = self.batch as u64 * row_bytes;
        if batch_bytes > limit {
            // Not even one batch fits: a device limit, so `--device auto` falls back to the CPU.
            return Err(crate::GpuError::BufferTooLarge {
                buffer: format!("{} (one batch of {} rows)", name(SetBuffer::X), self.batch),
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
                .storage(&name(SetBuffer::X), chunk_rows as u64 * row_bytes)?,
            y: self
                .pool
                .storage(&name(SetBuffer::Y), (chunk_rows * 4) as u64)?,
            teacher: match teacher {
                Some(_) => Some(
                    self.pool
                        .storage(&name(SetBuffer::Teacher), (chunk_rows * classes * 4) as u64)?,
                ),
                None => None,
            },
            order: self.pool.upload(&name(SetBuffer::Order), &local)?,
            stream: Some(Stream {
                chunk_steps,
                x: x.to_vec(),
                y: labels,
                teacher: teacher.map(<[f32]>::to_vec),
            }),
        })
    }

    /// Writes the rows of steps `first..first + steps` (positions in `order`) into a streamed set's chunk.
    pub(super) fn write_chunk(&self, set: &DataSet, order: &[u32], first: usize, steps: usize) {
        let Some(st) = &set.stream else { return };
        let in_len = self.net.tensor_len[0];
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
    pub(super) fn gather_order(&self, set: &DataSet, order: &[u32]) -> Vec<u32> {
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
        let set = self.upload_set(Phase::Train, x, y, teacher)?;
        self.train = Some(set);
        Ok(())
    }

    /// Uploads the validation set, evaluated after every epoch with the plain (class-weighted) cross-entropy.
    ///
    /// # Errors
    ///
    /// As [`GpuTrainer::upload_train_set`].
    pub fn upload_val_set(&mut self, x: &[f32], y: &[u8]) -> Result<()> {
        let set = self.upload_set(Phase::Eval, x, y, None)?;
        self.val = Some(set);
        Ok(())
    }
}
