// Element-wise activation forward: y = f(x).
// op: 0 ReLU, 1 ReLU6, 2 Clamp(lo, hi), 3 Tanh, 4 Sigmoid.

struct Params {
    len: u32,
    op: u32,
    lo: f32,
    hi: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.len) {
        return;
    }
    let v = x[i];
    var r = v;
    switch p.op {
        case 0u: { r = max(v, 0.0); }
        case 1u: { r = min(max(v, 0.0), 6.0); }
        case 2u: { r = min(max(v, p.lo), p.hi); }
        case 3u: { r = tanh(v); }
        default: { r = 1.0 / (1.0 + exp(-v)); }
    }
    y[i] = r;
}
