//! Optimizers with the update rules of `torch.optim.Adam` and `torch.optim.SGD`.
//!
//! An [`Optimizer`] keeps one state slot per parameter tensor, in [`Sequential::state_dict`] order.
//! Its state can be exported as named tensors ([`Optimizer::state`]) and restored ([`Optimizer::restore`]),
//! which is how training resumes from a checkpoint.

use serde::{Deserialize, Serialize};

use super::error::{ModelError, Result};
use super::sequential::{Gradients, Sequential, StateDict};

/// An optimizer hyper-parameter outside its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptimizerError {
    /// A setting is outside its range.
    #[error("{optimizer} {setting}: {source}")]
    Range {
        /// `adam` or `sgd`.
        optimizer: &'static str,
        /// The setting, as written in a config file (`momentum`).
        setting: &'static str,
        /// The value and the range.
        #[source]
        source: crate::limits::RangeError,
    },
    /// Nesterov momentum was asked for without a momentum.
    #[error("sgd nesterov needs momentum > 0")]
    NesterovWithoutMomentum,
}

/// Which optimizer to use, with its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma and Ba) with bias correction; weight decay is L2 added to the gradient, as in `torch.optim.Adam`.
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first-moment average (default 0.9).
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Decay of the second-moment average (default 0.999).
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Added to the denominator for stability (default 1e-8).
        #[serde(default = "default_eps")]
        eps: f32,
        /// L2 penalty coefficient (default 0).
        #[serde(default)]
        weight_decay: f32,
    },
    /// Stochastic gradient descent with optional momentum (heavy-ball or Nesterov), as `torch.optim.SGD` with dampening 0.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor (default 0, which disables momentum).
        #[serde(default)]
        momentum: f32,
        /// Use Nesterov momentum (needs `momentum > 0`; default false).
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty coefficient (default 0).
        #[serde(default)]
        weight_decay: f32,
    },
}

fn default_beta1() -> f32 {
    0.9
}

fn default_beta2() -> f32 {
    0.999
}

fn default_eps() -> f32 {
    1e-8
}

/// Adam's learning rate when none is given (PyTorch's default).
pub const DEFAULT_ADAM_LR: f32 = 1e-3;
/// SGD's learning rate when none is given.
pub const DEFAULT_SGD_LR: f32 = 1e-2;
/// SGD's momentum when none is given.
pub const DEFAULT_SGD_MOMENTUM: f32 = 0.9;

impl Default for OptimizerConfig {
    /// Adam with PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        Self::adam(DEFAULT_ADAM_LR)
    }
}

impl OptimizerConfig {
    /// Adam with learning rate `lr` and PyTorch's other defaults.
    pub fn adam(lr: f32) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// SGD with learning rate `lr`, heavy-ball `momentum`, no Nesterov and no weight decay.
    pub fn sgd(lr: f32, momentum: f32) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            OptimizerConfig::Adam { lr, .. } | OptimizerConfig::Sgd { lr, .. } => lr,
        }
    }

    /// Checks the hyper-parameters against their ranges in [`crate::limits`]: learning rate finite and > 0,
    /// betas and SGD momentum in `[0, 1)`, eps finite and > 0, weight decay finite and >= 0, and Nesterov only
    /// with a momentum above 0.
    ///
    /// # Errors
    ///
    /// The first bad setting, as an [`OptimizerError`] such as `sgd momentum: 2 is out of range: expected a
    /// number in [0, 1)`.
    pub fn validate(&self) -> std::result::Result<(), OptimizerError> {
        use crate::limits::{ADAM_BETA, ADAM_EPS, LR, MOMENTUM, WEIGHT_DECAY};
        let (optimizer, checks): (&'static str, Vec<(&'static str, crate::limits::Real, f32)>) =
            match *self {
                OptimizerConfig::Adam {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => (
                    "adam",
                    vec![
                        ("lr", LR, lr),
                        ("beta1", ADAM_BETA, beta1),
                        ("beta2", ADAM_BETA, beta2),
                        ("eps", ADAM_EPS, eps),
                        ("weight_decay", WEIGHT_DECAY, weight_decay),
                    ],
                ),
                OptimizerConfig::Sgd {
                    lr,
                    momentum,
                    weight_decay,
                    ..
                } => (
                    "sgd",
                    vec![
                        ("lr", LR, lr),
                        ("momentum", MOMENTUM, momentum),
                        ("weight_decay", WEIGHT_DECAY, weight_decay),
                    ],
                ),
            };
        for (setting, range, value) in checks {
            range
                .check_f32(value)
                .map_err(|source| OptimizerError::Range {
                    optimizer,
                    setting,
                    source,
                })?;
        }
        if let OptimizerConfig::Sgd {
            momentum,
            nesterov: true,
            ..
        } = *self
            && momentum <= 0.0
        {
            return Err(OptimizerError::NesterovWithoutMomentum);
        }
        Ok(())
    }

    pub(crate) fn slot_names(&self) -> &'static [&'static str] {
        match self {
            OptimizerConfig::Adam { .. } => &["exp_avg", "exp_avg_sq"],
            OptimizerConfig::Sgd { momentum, .. } if *momentum != 0.0 => &["momentum_buffer"],
            OptimizerConfig::Sgd { .. } => &[],
        }
    }
}

/// An optimizer bound to the parameter list of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Optimizer {
    config: OptimizerConfig,
    step: u64,
    params: Vec<(String, Vec<usize>)>,
    /// `slots[s][p]`: state slot `s` (see `slot_names`) of parameter `p`, empty until the first step.
    slots: Vec<Vec<Vec<f32>>>,
}

/// The exported state of an [`Optimizer`].
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// Steps taken so far.
    pub step: u64,
    /// Named state tensors, `{param}.exp_avg`, `{param}.exp_avg_sq` (Adam) or `{param}.momentum_buffer` (SGD),
    /// shaped like their parameter; empty before the first step.
    pub tensors: StateDict,
}

impl Optimizer {
    /// Creates a fresh optimizer for `model`'s parameters.
    ///
    /// # Errors
    ///
    /// [`ModelError::Optimizer`] when a hyper-parameter is out of range.
    pub fn new(config: OptimizerConfig, model: &Sequential) -> Result<Self> {
        config.validate().map_err(ModelError::Optimizer)?;
        let params = model.parameter_shapes();
        let slots = vec![vec![Vec::new(); params.len()]; config.slot_names().len()];
        Ok(Self {
            config,
            step: 0,
            params,
            slots,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Applies one update to `model` from `grads` (aligned with the model's state dict).
    ///
    /// Pruning masks are re-applied after the update, so pruned weights stay exactly zero.
    ///
    /// # Errors
    ///
    /// [`ModelError::TensorLength`] if the gradients do not match the parameters.
    pub fn step(&mut self, model: &mut Sequential, grads: &Gradients) -> Result<()> {
        if grads.tensors.len() != self.params.len() {
            return Err(ModelError::TensorNames {
                missing: self.params.iter().map(|p| p.0.clone()).collect(),
                unexpected: vec![format!("{} gradient tensors", grads.tensors.len())],
            });
        }
        let mut params = model.params_mut();
        if params.len() != self.params.len() {
            return Err(ModelError::TensorNames {
                missing: self.params.iter().map(|p| p.0.clone()).collect(),
                unexpected: vec![format!("{} model tensors", params.len())],
            });
        }
        for (i, (p, g)) in params.iter().zip(&grads.tensors).enumerate() {
            if p.len() != g.len() {
                return Err(ModelError::TensorLength {
                    name: self.params[i].0.clone(),
                    shape: self.params[i].1.clone(),
                    len: g.len(),
                });
            }
        }
        self.step += 1;
        let t = self.step as f64;
        match self.config {
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let bc1 = 1.0 - f64::from(beta1).powf(t);
                let bc2_sqrt = (1.0 - f64::from(beta2).powf(t)).sqrt();
                let step_size = (f64::from(lr) / bc1) as f32;
                let inv_bc2_sqrt = (1.0 / bc2_sqrt) as f32;
                let (m_slots, rest) = self.slots.split_at_mut(1);
                for (i, (p, g)) in params.iter_mut().zip(&grads.tensors).enumerate() {
                    let m = &mut m_slots[0][i];
                    let v = &mut rest[0][i];
                    if m.is_empty() {
                        m.resize(p.len(), 0.0);
                        v.resize(p.len(), 0.0);
                    }
                    for (((pv, &gv), mv), vv) in
                        p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        let gv = gv + weight_decay * *pv;
                        *mv = beta1 * *mv + (1.0 - beta1) * gv;
                        *vv = beta2 * *vv + (1.0 - beta2) * gv * gv;
                        let denom = vv.sqrt() * inv_bc2_sqrt + eps;
                        *pv -= step_size * *mv / denom;
                    }
                }
            }
            OptimizerConfig::Sgd {
                lr,
                momentum,
                nesterov,
                weight_decay,
            } => {
                for (i, (p, g)) in params.iter_mut().zip(&grads.tensors).enumerate() {
                    if momentum == 0.0 {
                        for (pv, &gv) in p.iter_mut().zip(g) {
                            *pv -= lr * (gv + weight_decay * *pv);
                        }
                        continue;
                    }
                    let buf = &mut self.slots[0][i];
                    let first = buf.is_empty();
                    if first {
                        buf.resize(p.len(), 0.0);
                    }
                    for (pv, (&gv, bv)) in p.iter_mut().zip(g.iter().zip(buf.iter_mut())) {
                        let gv = gv + weight_decay * *pv;
                        // PyTorch starts the buffer at the first gradient rather than at zero.
                        *bv = if first { gv } else { momentum * *bv + gv };
                        let d = if nesterov { gv + momentum * *bv } else { *bv };
                        *pv -= lr * d;
                    }
                }
            }
        }
        drop(params);
        // Momentum (or weight decay on a stale optimizer state) must not revive pruned weights.
        model.apply_masks();
        Ok(())
    }

    /// Exports the step count and the state tensors.
    pub fn state(&self) -> OptimizerState {
        let mut tensors = Vec::new();
        for (s, slot_name) in self.config.slot_names().iter().enumerate() {
            for (p, (name, shape)) in self.params.iter().enumerate() {
                let data = &self.slots[s][p];
                if !data.is_empty() {
                    tensors.push((format!("{name}.{slot_name}"), shape.clone(), data.clone()));
                }
            }
        }
        OptimizerState {
            step: self.step,
            tensors,
        }
    }

    /// Restores a state exported by [`Optimizer::state`] for the same parameters and optimizer kind.
    ///
    /// # Errors
    ///
    /// [`ModelError::TensorNames`], [`ModelError::TensorShape`] or [`ModelError::TensorLength`] when the state
    /// does not fit; the optimizer is unchanged then.
    pub fn restore(&mut self, state: &OptimizerState) -> Result<()> {
        let mut slots = vec![vec![Vec::new(); self.params.len()]; self.config.slot_names().len()];
        let mut unexpected = Vec::new();
        for (name, shape, data) in &state.tensors {
            let found = self
                .config
                .slot_names()
                .iter()
                .enumerate()
                .find_map(|(s, slot)| {
                    let param = name.strip_suffix(slot)?.strip_suffix('.')?;
                    let p = self.params.iter().position(|(n, _)| n == param)?;
                    Some((s, p))
                });
            let Some((s, p)) = found else {
                unexpected.push(name.clone());
                continue;
            };
            if *shape != self.params[p].1 {
                return Err(ModelError::TensorShape {
                    name: name.clone(),
                    expected: self.params[p].1.clone(),
                    got: shape.clone(),
                });
            }
            if data.len() != shape.iter().product::<usize>() {
                return Err(ModelError::TensorLength {
                    name: name.clone(),
                    shape: shape.clone(),
                    len: data.len(),
                });
            }
            slots[s][p] = data.clone();
        }
        // Before the first step every slot is empty; after it every slot is filled.
        let missing: Vec<String> = if state.step > 0 {
            self.config
                .slot_names()
                .iter()
                .enumerate()
                .flat_map(|(s, slot)| {
                    self.params
                        .iter()
                        .enumerate()
                        .filter(|&(p, _)| slots[s][p].is_empty())
                        .map(move |(_, (n, _))| format!("{n}.{slot}"))
                        .collect::<Vec<_>>()
                })
                .collect()
        } else {
            Vec::new()
        };
        if state.step == 0 && !state.tensors.is_empty() {
            unexpected.extend(state.tensors.iter().map(|t| t.0.clone()));
        }
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(ModelError::TensorNames {
                missing,
                unexpected,
            });
        }
        self.step = state.step;
        self.slots = slots;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Sequential {
        let arch = crate::model::Architecture::from_toml_str(
            "name = \"o\"\nclasses = 2\n[input]\ntime_steps = 1\nfeatures = 2\n[[layers]]\ntype = \"dense\"\nout = 2\n",
        )
        .unwrap();
        let mut m = Sequential::new(arch, 1).unwrap();
        m.load_state_dict(&[
            ("fc1.weight".into(), vec![2, 2], vec![1.0, -2.0, 0.5, 0.0]),
            ("fc1.bias".into(), vec![2], vec![0.1, -0.1]),
        ])
        .unwrap();
        m
    }

    fn grads(scale: f32) -> Gradients {
        Gradients {
            tensors: vec![
                vec![0.5 * scale, -0.25 * scale, 2.0 * scale, 0.0],
                vec![1.0 * scale, -4.0 * scale],
            ],
        }
    }

    fn flat(m: &Sequential) -> Vec<f32> {
        m.state_dict().into_iter().flat_map(|t| t.2).collect()
    }

    #[test]
    fn adam_follows_the_pytorch_update() {
        let (lr, b1, b2, eps, wd) = (0.1f32, 0.9f32, 0.99f32, 1e-8f32, 0.01f32);
        let mut m = model();
        let mut opt = Optimizer::new(
            OptimizerConfig::Adam {
                lr,
                beta1: b1,
                beta2: b2,
                eps,
                weight_decay: wd,
            },
            &m,
        )
        .unwrap();
        let mut p: Vec<f64> = flat(&m).iter().map(|&v| f64::from(v)).collect();
        let (mut mm, mut vv) = (vec![0f64; 6], vec![0f64; 6]);
        for (t, scale) in [(1, 1.0f32), (2, -0.5), (3, 2.0)] {
            let g: Vec<f64> = grads(scale)
                .tensors
                .concat()
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            for i in 0..6 {
                let gi = g[i] + f64::from(wd) * p[i];
                mm[i] = f64::from(b1) * mm[i] + (1.0 - f64::from(b1)) * gi;
                vv[i] = f64::from(b2) * vv[i] + (1.0 - f64::from(b2)) * gi * gi;
                let mhat = mm[i] / (1.0 - f64::from(b1).powi(t));
                let vhat = vv[i] / (1.0 - f64::from(b2).powi(t));
                p[i] -= f64::from(lr) * mhat / (vhat.sqrt() + f64::from(eps));
            }
            opt.step(&mut m, &grads(scale)).unwrap();
        }
        for (a, b) in flat(&m).iter().zip(&p) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert_eq!(opt.steps(), 3);
    }

    #[test]
    fn sgd_momentum_and_nesterov_follow_pytorch() {
        for nesterov in [false, true] {
            let (lr, mu) = (0.1f32, 0.9f32);
            let mut m = model();
            let cfg = OptimizerConfig::Sgd {
                lr,
                momentum: mu,
                nesterov,
                weight_decay: 0.0,
            };
            let mut opt = Optimizer::new(cfg, &m).unwrap();
            let p0 = flat(&m);
            let g1 = grads(1.0).tensors.concat();
            let g2 = grads(-2.0).tensors.concat();
            opt.step(&mut m, &grads(1.0)).unwrap();
            opt.step(&mut m, &grads(-2.0)).unwrap();
            for i in 0..6 {
                // The buffer starts at the first gradient: b1 = g1, b2 = mu * b1 + g2.
                let (b1, b2) = (g1[i], mu * g1[i] + g2[i]);
                let (d1, d2) = if nesterov {
                    (g1[i] + mu * b1, g2[i] + mu * b2)
                } else {
                    (b1, b2)
                };
                let want = p0[i] - lr * d1 - lr * d2;
                assert!(
                    (flat(&m)[i] - want).abs() < 1e-6,
                    "nesterov {nesterov} [{i}]"
                );
            }
        }
        // Plain SGD with weight decay.
        let mut m = model();
        let mut opt = Optimizer::new(
            OptimizerConfig::Sgd {
                lr: 0.5,
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.1,
            },
            &m,
        )
        .unwrap();
        let p0 = flat(&m);
        opt.step(&mut m, &grads(1.0)).unwrap();
        let g = grads(1.0).tensors.concat();
        for i in 0..6 {
            assert!((flat(&m)[i] - (p0[i] - 0.5 * (g[i] + 0.1 * p0[i]))).abs() < 1e-6);
        }
        assert!(opt.state().tensors.is_empty());
    }

    #[test]
    fn state_export_and_restore_continue_identically() {
        for cfg in [OptimizerConfig::adam(0.01), OptimizerConfig::sgd(0.1, 0.5)] {
            let mut a = model();
            let mut opt_a = Optimizer::new(cfg.clone(), &a).unwrap();
            let fresh = Optimizer::new(cfg.clone(), &a).unwrap();
            assert!(fresh.state().tensors.is_empty());
            opt_a.step(&mut a, &grads(1.0)).unwrap();
            opt_a.step(&mut a, &grads(0.5)).unwrap();
            let state = opt_a.state();
            let names: Vec<&str> = state.tensors.iter().map(|t| t.0.as_str()).collect();
            match cfg {
                OptimizerConfig::Adam { .. } => assert_eq!(
                    names,
                    [
                        "fc1.weight.exp_avg",
                        "fc1.bias.exp_avg",
                        "fc1.weight.exp_avg_sq",
                        "fc1.bias.exp_avg_sq"
                    ]
                ),
                OptimizerConfig::Sgd { .. } => {
                    assert_eq!(
                        names,
                        ["fc1.weight.momentum_buffer", "fc1.bias.momentum_buffer"]
                    )
                }
            }
            let mut b = a.clone();
            let mut opt_b = Optimizer::new(cfg.clone(), &b).unwrap();
            opt_b.restore(&state).unwrap();
            assert_eq!(opt_a, opt_b);
            opt_a.step(&mut a, &grads(-1.0)).unwrap();
            opt_b.step(&mut b, &grads(-1.0)).unwrap();
            assert_eq!(flat(&a), flat(&b));

            let mut partial = state.clone();
            partial.tensors.pop();
            assert!(matches!(
                opt_b.restore(&partial),
                Err(ModelError::TensorNames { .. })
            ));
            let mut shaped = state.clone();
            shaped.tensors[0].1 = vec![4];
            assert!(matches!(
                opt_b.restore(&shaped),
                Err(ModelError::TensorShape { .. })
            ));
        }
    }

    #[test]
    fn rejects_bad_hyper_parameters() {
        let m = model();
        for cfg in [
            OptimizerConfig::adam(0.0),
            OptimizerConfig::adam(f32::NAN),
            OptimizerConfig::Adam {
                lr: 1e-3,
                beta1: 1.0,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0,
            },
            OptimizerConfig::Adam {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 0.0,
                weight_decay: 0.0,
            },
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.0,
                nesterov: true,
                weight_decay: 0.0,
            },
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.5,
                nesterov: false,
                weight_decay: -1.0,
            },
            OptimizerConfig::sgd(0.1, 2.0),
            OptimizerConfig::sgd(0.1, 1.0),
            OptimizerConfig::sgd(0.1, f32::NAN),
        ] {
            assert!(matches!(
                Optimizer::new(cfg, &m),
                Err(ModelError::Optimizer(_))
            ));
        }
        assert_eq!(
            OptimizerConfig::sgd(0.1, 2.0)
                .validate()
                .unwrap_err()
                .to_string(),
            "sgd momentum: 2 is out of range: expected a number in [0, 1)"
        );
        assert_eq!(
            OptimizerConfig::adam(-1e-3)
                .validate()
                .unwrap_err()
                .to_string(),
            "adam lr: -0.001 is out of range: expected a finite number > 0"
        );
        assert!(OptimizerConfig::sgd(0.1, 0.99).validate().is_ok());
    }
}
