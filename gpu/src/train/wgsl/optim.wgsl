// One optimizer step on one parameter tensor, as host/src/model/optim.rs:
// kind 0 Adam (with L2 weight decay added to the gradient, bias corrections from the host per step),
// kind 1 SGD (momentum, Nesterov, weight decay; the first step sets the momentum buffer to the gradient).
// With a pruning mask the gradient is masked first and pruned weights are set to exactly +0.0 afterwards.
// table[step] = (Adam step size lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t), 1 on the first step of the run, 0).

struct Params {
    len: u32,
    kind: u32,
    has_mask: u32,
    nesterov: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
    pad0: f32,
    pad1: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<f32>;
@group(0) @binding(6) var<storage, read> table: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> cursor: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.len) {
        return;
    }
    let s = table[cursor[0]];
    var mk = 1.0;
    if (p.has_mask != 0u) {
        mk = mask[i];
    }
    var pv = param[i];
    let g = grad[i] * mk + p.weight_decay * pv;
    if (p.kind == 0u) {
        let mv = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        let vv = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        m[i] = mv;
        v[i] = vv;
        let denom = sqrt(vv) * s.y + p.eps;
        pv = pv - s.x * mv / denom;
    } else if (p.momentum == 0.0) {
        pv = pv - p.lr * g;
    } else {
        var b = p.momentum * m[i] + g;
        if (s.z != 0.0) {
            b = g;
        }
        m[i] = b;
        var d = b;
        if (p.nesterov != 0u) {
            d = g + p.momentum * b;
        }
        pv = pv - p.lr * d;
    }
    if (mk == 0.0) {
        pv = 0.0;
    }
    param[i] = pv;
}
