//! f32 training on the GPU.
//!
//! The host describes its model with [`ModelDesc`] (layers and shapes, in the host's layouts) and hands over
//! one [`ParamTensors`] per dense or conv1d layer; [`GpuTrainer`] then keeps parameters, gradients, optimizer
//! state and both data sets on the GPU and runs whole epochs there.
//!
//! One training step is a fixed list of dispatches, built once per batch size and replayed:
//!
//! 1. gather the batch's rows (and labels, teacher logits) from the resident data set through the epoch's
//!    shuffled order; sequence rows are transposed into `[N, C, T]` on the way;
//! 2. forward: a tiled matrix multiply for dense layers (`X W^T + b`), im2col + matrix multiply + reorder for
//!    conv1d, element-wise activations, pooling; flatten is free (the buffers are already row-major);
//! 3. the loss and its gradient (softmax cross-entropy with class weights, or the distillation loss) in one
//!    workgroup, adding the batch's loss, weight and correct count to the epoch statistics;
//! 4. backward: `dY^T X` and `dY W` with the same matrix multiply kernel through strides, column sums for
//!    biases, a gather form of col2im, activation and pooling derivatives;
//! 5. Adam or SGD on every tensor, masking pruned weights (masked gradients, pruned weights set to +0.0);
//! 6. advance the step cursor.
//!
//! Sums always run in a fixed order and no kernel uses atomics, so a run is deterministic on one adapter.
//! It follows the host's arithmetic but in f32 throughout (the host sums the loss in f64) and with the GPU's
//! summation order, so results agree with the CPU within a tolerance, not bit for bit.

mod desc;
mod kernels;
mod params;
mod trainer;

pub use desc::{
    Activation, LayerDesc, LossDesc, ModelDesc, OptimizerDesc, ParamTensors, TrainGpuError,
};
pub use trainer::{EpochStats, GpuTrainer, LayerParams, PassStats, StepTrace};
