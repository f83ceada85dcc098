//! The honest baseline: the same network in plain f32, the loops a careful user would write by hand, compiled the
//! same way as the engine it is compared with. Dense and Conv1d are `y[o] += w[k][o] * x[k]` over weights stored
//! input-major (`[k][o]`), so the inner loop runs across output channels and vectorizes without reassociating a
//! sum; buffers are allocated once.

use tickq_host::model::{Layer, Padding, Sequential};

/// One layer of the f32 network.
enum Op {
    Dense {
        out: usize,
        input: usize,
        w: Vec<f32>,
        b: Vec<f32>,
    },
    Conv {
        out: usize,
        c_in: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        causal: bool,
        w: Vec<f32>,
        b: Vec<f32>,
    },
    Relu,
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    GlobalAvgPool,
    Flatten,
}

/// A network in plain f32 with its two ping-pong buffers.
pub struct F32Net {
    ops: Vec<Op>,
    input: (usize, usize),
    a: Vec<f32>,
    b: Vec<f32>,
}

impl F32Net {
    /// The f32 form of `model` (Dense, Conv1d, ReLU, global average pool and flatten layers).
    pub fn new(model: &Sequential) -> F32Net {
        let mut ops = Vec::new();
        let mut biggest = model.arch.input.time_steps * model.arch.input.features;
        let (mut t, mut c) = (model.arch.input.time_steps, model.arch.input.features);
        for layer in &model.layers {
            match layer {
                Layer::Dense(d) => {
                    let (out, input) = d.weight.dim();
                    // Input-major `[k][o]`.
                    let w = d.weight.t().iter().copied().collect();
                    ops.push(Op::Dense {
                        out,
                        input,
                        w,
                        b: d.bias.to_vec(),
                    });
                    (t, c) = (1, out);
                }
                Layer::Conv1d(conv) => {
                    let (out, c_in, kernel) = conv.weight.dim();
                    // `[k][in][out]`, the order the loops walk: outputs innermost.
                    let mut w = Vec::with_capacity(out * kernel * c_in);
                    for k in 0..kernel {
                        for i in 0..c_in {
                            for o in 0..out {
                                w.push(conv.weight[[o, i, k]]);
                            }
                        }
                    }
                    let causal = conv.padding == Padding::Causal;
                    let span = conv.dilation * (kernel - 1) + 1;
                    t = if causal {
                        (t - 1) / conv.stride + 1
                    } else {
                        (t - span) / conv.stride + 1
                    };
                    c = out;
                    ops.push(Op::Conv {
                        out,
                        c_in,
                        kernel,
                        stride: conv.stride,
                        dilation: conv.dilation,
                        causal,
                        w,
                        b: conv.bias.to_vec(),
                    });
                }
                Layer::ReLU => ops.push(Op::Relu),
                Layer::MaxPool1d { kernel, stride } => {
                    ops.push(Op::MaxPool {
                        kernel: *kernel,
                        stride: *stride,
                    });
                    t = (t - kernel) / stride + 1;
                }
                Layer::GlobalAvgPool => {
                    ops.push(Op::GlobalAvgPool);
                    t = 1;
                }
                Layer::Flatten => {
                    ops.push(Op::Flatten);
                    (t, c) = (1, t * c);
                }
                other => panic!("the f32 baseline has no {other:?}"),
            }
            biggest = biggest.max(t * c);
        }
        F32Net {
            ops,
            input: (model.arch.input.time_steps, model.arch.input.features),
            a: vec![0.0; biggest],
            b: vec![0.0; biggest],
        }
    }

    /// Runs one sample (time-major `[T, F]`) and returns the argmax of the logits.
    #[inline(never)]
    pub fn run(&mut self, x: &[f32]) -> usize {
        let (mut t, mut c) = self.input;
        self.a[..x.len()].copy_from_slice(x);
        let (mut src, mut dst) = (&mut self.a, &mut self.b);
        for op in &self.ops {
            match op {
                Op::Dense { out, input, w, b } => {
                    let y = &mut dst[..*out];
                    y.copy_from_slice(b);
                    for (k, &xk) in src[..*input].iter().enumerate() {
                        for (yo, &wo) in y.iter_mut().zip(&w[k * out..(k + 1) * out]) {
                            *yo += wo * xk;
                        }
                    }
                    (t, c) = (1, *out);
                }
                Op::Conv {
                    out,
                    c_in,
                    kernel,
                    stride,
                    dilation,
                    causal,
                    w,
                    b,
                } => {
                    let pad = if *causal { dilation * (kernel - 1) } else { 0 };
                    let t_out = (t + pad - dilation * (kernel - 1) - 1) / stride + 1;
                    for s in 0..t_out {
                        let y = &mut dst[s * out..(s + 1) * out];
                        y.copy_from_slice(b);
                        for k in 0..*kernel {
                            let at = s * stride + k * dilation;
                            if at < pad {
                                continue;
                            }
                            let xs = &src[(at - pad) * c_in..(at - pad + 1) * c_in];
                            for (i, &xi) in xs.iter().enumerate() {
                                let ws = &w[(k * c_in + i) * out..(k * c_in + i + 1) * out];
                                for (yo, &wo) in y.iter_mut().zip(ws) {
                                    *yo += wo * xi;
                                }
                            }
                        }
                    }
                    (t, c) = (t_out, *out);
                }
                Op::Relu => {
                    for v in &mut src[..t * c] {
                        *v = v.max(0.0);
                    }
                    continue;
                }
                Op::MaxPool { kernel, stride } => {
                    let t_out = (t - kernel) / stride + 1;
                    for s in 0..t_out {
                        for ch in 0..c {
                            let mut m = f32::NEG_INFINITY;
                            for k in 0..*kernel {
                                m = m.max(src[(s * stride + k) * c + ch]);
                            }
                            dst[s * c + ch] = m;
                        }
                    }
                    t = t_out;
                }
                Op::GlobalAvgPool => {
                    for ch in 0..c {
                        let mut s = 0.0;
                        for step in 0..t {
                            s += src[step * c + ch];
                        }
                        dst[ch] = s / t as f32;
                    }
                    t = 1;
                }
                Op::Flatten => {
                    (t, c) = (1, t * c);
                    continue;
                }
            }
            std::mem::swap(&mut src, &mut dst);
        }
        let logits = &src[..c];
        let mut best = 0;
        for (i, &v) in logits.iter().enumerate() {
            if v > logits[best] {
                best = i;
            }
        }
        best
    }
}
