//! f32 models: the architecture file, layers with backprop, loss and optimizers.
//!
//! An [`Architecture`] (TOML or JSON) describes a sequential network over an input window of
//! `time_steps` ticks by `features` values.
//! [`Sequential::new`] turns it into an f32 model with PyTorch-style initialization; its parameters
//! use PyTorch's names and layouts (`fc1.weight [out, in]`, `conv1.weight [out, in, kernel]`), so
//! [`Sequential::state_dict`] matches `nn.Module.state_dict()` of the equivalent PyTorch network.
//!
//! Training pieces: [`Sequential::forward_train`] and [`Sequential::backward`] give [`Gradients`],
//! [`cross_entropy`] gives the loss and its gradient, and an [`Optimizer`] applies the update.
//! The training loop itself lives in [`crate::train`], and files in [`crate::checkpoint`].
//!
//! # Example
//!
//! ```
//! use tickq_host::model::{Architecture, Sequential};
//! use ndarray::Array2;
//!
//! let arch = Architecture::from_toml_str(r#"
//! name = "tiny"
//! classes = 3
//! [input]
//! time_steps = 1
//! features = 4
//! [[layers]]
//! type = "dense"
//! out = 8
//! [[layers]]
//! type = "relu"
//! [[layers]]
//! type = "dense"
//! out = 3
//! "#)?;
//! let model = Sequential::new(arch, 7)?;
//! let logits = model.try_forward(Array2::zeros((2, 4)).view())?;
//! assert_eq!(logits.dim(), (2, 3));
//! assert_eq!(model.state_dict()[0].0, "fc1.weight");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod arch;
mod error;
mod layers;
mod loss;
mod optim;
mod sequential;

#[cfg(test)]
mod gradcheck;

pub(crate) use arch::is_layer_name_form;
pub use arch::{Architecture, InputSpec, LayerSpec, Padding, Shape};
pub use error::{ClassWeightsProblem, ModelError, Result};
pub use layers::{Conv1d, Dense, Layer, LayerCache, ParamGrads, Tensor};
pub use loss::{CrossEntropy, check_class_weights, class_weights_balanced, cross_entropy};
pub use optim::{
    DEFAULT_ADAM_LR, DEFAULT_SGD_LR, DEFAULT_SGD_MOMENTUM, Optimizer, OptimizerConfig,
    OptimizerError, OptimizerState,
};
pub use sequential::{Gradients, Sequential, StateDict};
