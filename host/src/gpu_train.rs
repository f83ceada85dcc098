//! Training on the GPU: the bridge between the host's [`Sequential`] and [`tickq_gpu::train::GpuTrainer`].
//!
//! [`crate::train::train_on`] and [`crate::distill::distill_train_on`] take an [`EngineChoice`]; a
//! [`TrainDevice`] is one, and its engine, [`GpuEngine`], runs the epochs of the one training loop
//! ([`crate::train`]) on the GPU.
//! On the GPU an epoch runs as one batch of GPU work: the data sets are uploaded once, each epoch uploads only
//! the shuffled order, and the loss and accuracy of the epoch and of the validation pass come back together.
//! The model's weights and the optimizer's state come back only for checkpoints and at the end.
//! The seeded shuffle, the initial weights, early stopping and the checkpoint format are the CPU path's, so
//! a run can stop on one device and resume on the other.

#[cfg(feature = "gpu")]
use ndarray::ArrayView2;
#[cfg(feature = "gpu")]
use tickq_gpu::train::{
    Activation, GpuTrainer, LayerDesc, LossDesc, ModelDesc, OptimizerDesc, ParamTensors,
};

#[cfg(feature = "gpu")]
use crate::device::TrainGpuError;
use crate::device::{ComputeDevice, DeviceChoice, DeviceError, GpuContext};
#[cfg(feature = "gpu")]
use crate::model::{Layer, Optimizer, OptimizerConfig, OptimizerState, Sequential, StateDict};
use crate::train::{Engine, EngineChoice, EngineSetup, TrainError};
#[cfg(feature = "gpu")]
use crate::train::{EpochStats, Loss};

/// Where training runs.
#[derive(Debug, Clone, Default)]
pub enum TrainDevice {
    /// On the CPU (ndarray, single-threaded).
    #[default]
    Cpu,
    /// On this GPU; a model the GPU trainer cannot run is an error.
    Gpu(GpuContext),
    /// On this GPU when the GPU trainer can run the model, else on the CPU (saying why in one line).
    Auto(GpuContext),
}

impl TrainDevice {
    /// Resolves `--device`: prints the skeleton's one device line (see [`DeviceChoice::resolve`]).
    ///
    /// # Errors
    ///
    /// [`DeviceError`] for `gpu` without an adapter.
    pub fn resolve(choice: DeviceChoice) -> Result<Self, DeviceError> {
        Ok(match (choice, choice.resolve()?) {
            (_, ComputeDevice::Cpu) => TrainDevice::Cpu,
            (DeviceChoice::Gpu, ComputeDevice::Gpu(ctx)) => TrainDevice::Gpu(ctx),
            (_, ComputeDevice::Gpu(ctx)) => TrainDevice::Auto(ctx),
        })
    }

    /// The GPU, if any.
    pub fn gpu(&self) -> Option<&GpuContext> {
        match self {
            TrainDevice::Cpu => None,
            TrainDevice::Gpu(c) | TrainDevice::Auto(c) => Some(c),
        }
    }
}

impl From<&ComputeDevice> for TrainDevice {
    /// A resolved `--device` of the pipeline: a GPU trains with a CPU fallback for models it cannot run.
    // Without the `gpu` feature the GPU arm cannot be reached (its context type has no values).
    #[cfg_attr(not(feature = "gpu"), allow(unreachable_code))]
    fn from(device: &ComputeDevice) -> Self {
        match device {
            ComputeDevice::Cpu => TrainDevice::Cpu,
            ComputeDevice::Gpu(ctx) => TrainDevice::Auto(ctx.clone()),
        }
    }
}

/// The GPU trainer's description of `model`.
///
/// # Errors
///
/// [`TrainGpuError::Layer`] naming a layer the GPU trainer has no kernels for (none today: every host layer
/// is supported; the match keeps new host layers from silently training wrong).
#[cfg(feature = "gpu")]
pub fn model_desc(model: &Sequential) -> Result<ModelDesc, TrainGpuError> {
    let mut layers = Vec::with_capacity(model.layers.len());
    for layer in &model.layers {
        layers.push(match layer {
            Layer::Dense(d) => LayerDesc::Dense {
                inputs: d.weight.ncols(),
                outputs: d.weight.nrows(),
            },
            Layer::Conv1d(c) => {
                let (o, i, k) = c.weight.dim();
                LayerDesc::Conv1d {
                    in_channels: i,
                    out_channels: o,
                    kernel: k,
                    stride: c.stride,
                    dilation: c.dilation,
                    pad_left: c.pad_left(),
                }
            }
            Layer::ReLU => LayerDesc::Activation(Activation::Relu),
            Layer::ReLU6 => LayerDesc::Activation(Activation::Relu6),
            Layer::Clamp { min, max } => LayerDesc::Activation(Activation::Clamp {
                min: *min,
                max: *max,
            }),
            Layer::Tanh => LayerDesc::Activation(Activation::Tanh),
            Layer::Sigmoid => LayerDesc::Activation(Activation::Sigmoid),
            Layer::MaxPool1d { kernel, stride } => LayerDesc::MaxPool1d {
                kernel: *kernel,
                stride: *stride,
            },
            Layer::AvgPool1d { kernel, stride } => LayerDesc::AvgPool1d {
                kernel: *kernel,
                stride: *stride,
            },
            Layer::GlobalAvgPool => LayerDesc::GlobalAvgPool,
            Layer::Flatten => LayerDesc::Flatten,
        });
    }
    Ok(ModelDesc {
        time_steps: model.arch.input.time_steps,
        features: model.arch.input.features,
        classes: model.classes(),
        layers,
    })
}

/// The weights, biases and masks of `model`'s dense and conv1d layers, in layer order.
#[cfg(feature = "gpu")]
pub fn param_tensors(model: &Sequential) -> Vec<ParamTensors> {
    model
        .layers
        .iter()
        .filter_map(|layer| {
            let (w, b) = match layer {
                Layer::Dense(d) => (d.weight.iter().copied().collect(), d.bias.to_vec()),
                Layer::Conv1d(c) => (c.weight.iter().copied().collect(), c.bias.to_vec()),
                _ => return None,
            };
            Some(ParamTensors {
                weight: w,
                bias: b,
                mask: layer.mask_values(),
            })
        })
        .collect()
}

/// The GPU trainer's description of an optimizer configuration.
#[cfg(feature = "gpu")]
pub fn optimizer_desc(cfg: &OptimizerConfig) -> OptimizerDesc {
    match *cfg {
        OptimizerConfig::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } => OptimizerDesc::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        },
        OptimizerConfig::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
        } => OptimizerDesc::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
        },
    }
}

/// Rows of `x` as one contiguous slice.
#[cfg(feature = "gpu")]
fn rows(x: ArrayView2<f32>) -> Vec<f32> {
    x.as_standard_layout().iter().copied().collect()
}

/// The GPU trainer's description of a loss, and the teacher's logits it needs for distillation.
#[cfg(feature = "gpu")]
fn loss_desc(loss: Loss<'_>) -> (LossDesc, Option<&[f32]>) {
    match loss {
        Loss::CrossEntropy => (LossDesc::CrossEntropy, None),
        Loss::Distill {
            alpha,
            temperature,
            teacher_logits,
        } => (
            LossDesc::Distill { alpha, temperature },
            Some(teacher_logits),
        ),
    }
}

impl EngineChoice for TrainDevice {
    /// Places the model, the optimizer state and the data on the GPU.
    /// Returns `None` (train on the CPU) for [`TrainDevice::Cpu`], and for [`TrainDevice::Auto`] when the GPU
    /// trainer cannot run this model (after printing why).
    fn start(&self, setup: &EngineSetup<'_>) -> Result<Option<Box<dyn Engine>>, TrainError> {
        let (ctx, fallback) = match self {
            TrainDevice::Cpu => return Ok(None),
            TrainDevice::Gpu(c) => (c, false),
            TrainDevice::Auto(c) => (c, true),
        };
        #[cfg(not(feature = "gpu"))]
        {
            let _ = (setup, fallback);
            match *ctx {}
        }
        #[cfg(feature = "gpu")]
        match GpuEngine::start(ctx, setup) {
            Ok(engine) => Ok(Some(Box::new(engine))),
            Err(e) if fallback && !matches!(e, TrainGpuError::Input(_)) => {
                eprintln!(
                    "device: CPU (--device auto: the GPU trainer cannot run this model: {e})"
                );
                Ok(None)
            }
            Err(e) => Err(TrainError::Gpu(e)),
        }
    }
}

/// A training run on the GPU: the [`Engine`] of a [`TrainDevice`] with a GPU.
#[derive(Debug)]
#[cfg(feature = "gpu")]
pub struct GpuEngine {
    trainer: GpuTrainer,
    /// Names of the parameter tensors, as the host's state dict orders them (weight, bias per layer).
    names: Vec<(String, Vec<usize>)>,
    /// Whether the GPU holds a snapshot of the best weights taken in this run.
    snapshot: bool,
    /// Validation rows, for the accuracy.
    val_rows: usize,
}

#[cfg(feature = "gpu")]
impl GpuEngine {
    /// Places the model, the optimizer state and the data of `setup` on the GPU of `ctx`.
    ///
    /// # Errors
    ///
    /// [`TrainGpuError`] when the GPU trainer cannot run the model or the GPU fails.
    pub fn start(ctx: &GpuContext, setup: &EngineSetup<'_>) -> Result<Self, TrainGpuError> {
        let model = setup.model;
        let desc = model_desc(model)?;
        let (loss, teacher) = loss_desc(setup.loss);
        let mut trainer = GpuTrainer::new(
            ctx,
            &desc,
            &param_tensors(model),
            optimizer_desc(setup.optimizer.config()),
            loss,
            setup.batch_size,
        )?;
        trainer.set_class_weights(setup.class_weights)?;
        trainer.upload_train_set(&rows(setup.train_x), setup.train_y, teacher)?;
        trainer.upload_val_set(&rows(setup.val_x), setup.val_y)?;
        let names = model.parameter_shapes();
        let mut engine = Self {
            trainer,
            names,
            snapshot: false,
            val_rows: setup.val_y.len(),
        };
        engine.restore_optimizer(setup.optimizer)?;
        Ok(engine)
    }

    /// Copies the host optimizer's state (a resumed run) to the GPU.
    fn restore_optimizer(&mut self, optimizer: &Optimizer) -> Result<(), TrainGpuError> {
        let state = optimizer.state();
        if state.step == 0 {
            return Ok(());
        }
        let find = |name: String| {
            state
                .tensors
                .iter()
                .find(|t| t.0 == name)
                .map(|t| t.2.clone())
                .ok_or_else(|| TrainGpuError::Input(format!("optimizer state has no {name}")))
        };
        let mut slots = Vec::new();
        for slot in optimizer.config().slot_names() {
            let mut layers = Vec::new();
            for pair in self.names.chunks(2) {
                let [(w, _), (b, _)] = pair else { continue };
                layers.push((find(format!("{w}.{slot}"))?, find(format!("{b}.{slot}"))?));
            }
            slots.push(layers);
        }
        self.trainer.set_optimizer_state(state.step, &slots)
    }

    fn state_dict(&self, params: Vec<(Vec<f32>, Vec<f32>)>) -> StateDict {
        let mut out = Vec::with_capacity(self.names.len());
        let values = params.into_iter().flat_map(|(w, b)| [w, b]);
        for ((name, shape), data) in self.names.iter().zip(values) {
            out.push((name.clone(), shape.clone(), data));
        }
        out
    }
}

#[cfg(feature = "gpu")]
impl Engine for GpuEngine {
    /// Runs the epoch and the validation pass as one batch of GPU work.
    fn epoch(
        &mut self,
        _model: &mut Sequential,
        _optimizer: &mut Optimizer,
        order: &[usize],
        epoch: usize,
    ) -> Result<EpochStats, TrainError> {
        let stats = self.trainer.run_epoch(order)?;
        if let Some(batch) = stats.train.diverged_at {
            return Err(TrainError::Diverged {
                epoch,
                batch: batch as usize,
                loss: f32::NAN,
            });
        }
        Ok(EpochStats {
            loss_sum: f64::from(stats.train.loss_sum),
            weight_sum: f64::from(stats.train.weight_sum),
            correct: stats.train.correct as usize,
            validation: stats.val.map(|v| {
                (
                    v.mean_loss(),
                    v.correct as f32 / self.val_rows.max(1) as f32,
                )
            }),
        })
    }

    /// With `to_host` reads the weights back; otherwise keeps a snapshot on the GPU for [`Engine::best`].
    fn keep_best(
        &mut self,
        _model: &Sequential,
        to_host: bool,
    ) -> Result<Option<StateDict>, TrainError> {
        if to_host {
            let p = self.trainer.params()?;
            Ok(Some(self.state_dict(p)))
        } else {
            self.trainer.snapshot_best();
            self.snapshot = true;
            Ok(None)
        }
    }

    /// Brings the current weights and the optimizer state to the host (before a checkpoint is written).
    fn sync(
        &mut self,
        model: &mut Sequential,
        optimizer: &mut Optimizer,
    ) -> Result<(), TrainError> {
        let p = self.trainer.params()?;
        model.load_state_dict(&self.state_dict(p))?;
        let slots = self.trainer.optimizer_state()?;
        let mut tensors = Vec::new();
        for (slot, layers) in optimizer.config().slot_names().iter().zip(slots) {
            let values = layers.into_iter().flat_map(|(w, b)| [w, b]);
            for ((name, shape), data) in self.names.iter().zip(values) {
                tensors.push((format!("{name}.{slot}"), shape.clone(), data));
            }
        }
        optimizer.restore(&OptimizerState {
            step: self.trainer.steps(),
            tensors,
        })?;
        Ok(())
    }

    /// The best weights kept on the GPU in this run, if [`Engine::keep_best`] kept any there.
    fn best(&mut self) -> Result<Option<StateDict>, TrainError> {
        if !self.snapshot {
            return Ok(None);
        }
        let p = self.trainer.best_params()?;
        Ok(Some(self.state_dict(p)))
    }
}

#[cfg(all(test, feature = "gpu"))]
#[path = "gpu_train_tests.rs"]
mod tests;
