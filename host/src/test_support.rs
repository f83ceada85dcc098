//! Fixtures shared by the crate's unit tests: architectures built from layer lists instead of
//! hand-written TOML, seeded random inputs and models, and the export metadata the quantizer needs.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{Architecture, InputSpec, LayerSpec, Padding, Sequential};
use crate::quant::ExportInfo;
use crate::train::{TrainConfig, TrainHistory};

pub(crate) use crate::model::LayerSpec::{Flatten, GlobalAvgPool, ReLU, ReLU6, Sigmoid, Tanh};

/// An architecture named `name` with `classes` outputs over a window of `time_steps` ticks of
/// `features` values, and `layers` in order. It goes through the architecture file's TOML form and
/// reader, so it is validated and defaulted exactly as the same network written as a file.
///
/// # Panics
///
/// When the network does not validate (a test fixture that is wrong).
pub(crate) fn arch(
    name: &str,
    classes: usize,
    [time_steps, features]: [usize; 2],
    layers: &[LayerSpec],
) -> Architecture {
    let arch = Architecture {
        name: name.to_string(),
        classes,
        input: InputSpec {
            time_steps,
            features,
        },
        layers: layers.to_vec(),
    };
    Architecture::from_toml_str(&toml(&arch)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The architecture file text of `arch`.
pub(crate) fn toml(arch: &Architecture) -> String {
    arch.to_toml_string()
        .expect("a test architecture has a TOML form")
}

/// A three-class MLP over `features` inputs: per `(out, activation)` a dense layer of `out` features
/// and the activation, then the dense output layer.
pub(crate) fn mlp(features: usize, hidden: &[(usize, LayerSpec)]) -> Architecture {
    let mut layers = Vec::new();
    for (out, act) in hidden {
        layers.extend([dense(*out), act.clone()]);
    }
    layers.push(dense(3));
    arch("mlp", 3, [1, features], &layers)
}

/// A dense layer of `out` features, named by position.
pub(crate) fn dense(out: usize) -> LayerSpec {
    LayerSpec::Dense { name: None, out }
}

/// A valid conv1d layer of `out` channels and `kernel` taps, stride and dilation 1, named by position.
pub(crate) fn conv(out: usize, kernel: usize) -> LayerSpec {
    LayerSpec::Conv1d {
        name: None,
        out,
        kernel,
        stride: 1,
        dilation: 1,
        padding: Padding::Valid,
    }
}

/// Max pooling over windows of `kernel` steps (stride `kernel`).
pub(crate) fn max_pool(kernel: usize) -> LayerSpec {
    LayerSpec::MaxPool1d {
        kernel,
        stride: None,
    }
}

/// Mean pooling over windows of `kernel` steps (stride `kernel`).
pub(crate) fn avg_pool(kernel: usize) -> LayerSpec {
    LayerSpec::AvgPool1d {
        kernel,
        stride: None,
    }
}

/// Changes to a [`LayerSpec`] built by [`dense`], [`conv`], [`max_pool`] or [`avg_pool`].
pub(crate) trait LayerExt {
    /// The layer with its parameters named `name` (dense and conv1d).
    fn named(self, name: &str) -> Self;
    /// The conv1d layer with causal padding.
    fn causal(self) -> Self;
    /// The conv1d or pooling layer with step `step` between outputs.
    fn stride(self, step: usize) -> Self;
    /// The conv1d layer with `spacing` between taps.
    fn dilation(self, spacing: usize) -> Self;
}

impl LayerExt for LayerSpec {
    fn named(mut self, to: &str) -> Self {
        match &mut self {
            LayerSpec::Dense { name, .. } | LayerSpec::Conv1d { name, .. } => {
                *name = Some(to.to_string());
            }
            other => panic!("{} has no name", other.kind()),
        }
        self
    }

    fn causal(mut self) -> Self {
        match &mut self {
            LayerSpec::Conv1d { padding, .. } => *padding = Padding::Causal,
            other => panic!("{} has no padding", other.kind()),
        }
        self
    }

    fn stride(mut self, step: usize) -> Self {
        match &mut self {
            LayerSpec::Conv1d { stride, .. } => *stride = step,
            LayerSpec::MaxPool1d { stride, .. } | LayerSpec::AvgPool1d { stride, .. } => {
                *stride = Some(step);
            }
            other => panic!("{} has no stride", other.kind()),
        }
        self
    }

    fn dilation(mut self, spacing: usize) -> Self {
        match &mut self {
            LayerSpec::Conv1d { dilation, .. } => *dilation = spacing,
            other => panic!("{} has no dilation", other.kind()),
        }
        self
    }
}

/// `n` rows of `width` values, each the sum of four uniform draws in `[-0.5, 0.5)` scaled by 1.7 (roughly
/// normal, standard deviation about 1), from `seed`.
pub(crate) fn random_inputs(n: usize, width: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, width), |_| {
        (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.7
    })
}

/// A model of `arch` with weights initialized from `seed`.
pub(crate) fn seeded_model(arch: Architecture, seed: u64) -> Sequential {
    Sequential::new(arch, seed).expect("a test architecture builds")
}

/// Export metadata for a three-class model over `features` unstandardized inputs.
pub(crate) fn export_info(features: usize) -> ExportInfo {
    ExportInfo {
        name: "test".into(),
        feature_names: (0..features).map(|i| format!("f{i}")).collect(),
        label_names: vec!["down".into(), "flat".into(), "up".into()],
        mean: vec![0.0; features],
        std: vec![1.0; features],
        data_hash: [7; 32],
        feature_spec: None,
    }
}

/// `n` rows of three noisy blobs in `features` dimensions, deterministic from `seed`: row `i` has
/// class `(i * 7 + 3) % 3`, and its value `f` is `value(f % 3 == class, uni)`, where `uni` draws from
/// `[-0.5, 0.5)`.
pub(crate) fn blobs(
    n: usize,
    features: usize,
    seed: u64,
    value: impl Fn(bool, &mut dyn FnMut() -> f32) -> f32,
) -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uni = || (rng.next_u32() >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
    let mut x = Array2::<f32>::zeros((n, features));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = (i * 7 + 3) % 3;
        for f in 0..features {
            x[[i, f]] = value(f % 3 == class, &mut uni);
        }
        y.push(class as u8);
    }
    (x, y)
}

/// [`crate::train::train`] of `model` on `x`, `y` with `val_x`, `val_y` for validation, watching no epoch.
pub(crate) fn fit(
    model: &mut Sequential,
    x: ArrayView2<f32>,
    y: &[u8],
    val_x: ArrayView2<f32>,
    val_y: &[u8],
    cfg: &TrainConfig,
) -> crate::train::Result<TrainHistory> {
    crate::train::train(model, x, y, val_x, val_y, cfg, &mut |_| {})
}
