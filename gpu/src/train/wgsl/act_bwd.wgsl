// Element-wise activation backward: dx = dy * f'(cached), where `cached` is the layer input for
// ReLU, ReLU6 and Clamp and the layer output for Tanh and Sigmoid (as on the CPU).
// op: 0 ReLU, 1 ReLU6, 2 Clamp(lo, hi), 3 Tanh, 4 Sigmoid.

struct Params {
    len: u32,
    op: u32,
    lo: f32,
    hi: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> cached: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.len) {
        return;
    }
    let c = cached[i];
    var d = 0.0;
    switch p.op {
        case 0u: { d = select(0.0, 1.0, c > 0.0); }
        case 1u: { d = select(0.0, 1.0, c > 0.0 && c < 6.0); }
        case 2u: { d = select(0.0, 1.0, c >= p.lo && c <= p.hi); }
        case 3u: { d = 1.0 - c * c; }
        default: { d = c * (1.0 - c); }
    }
    dx[i] = dy[i] * d;
}
