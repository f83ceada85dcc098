// Pooling over time on [N, C, T_in] lanes. op 0: max (first maximum wins, its lane index kept in `arg` for
// the backward pass), 1: mean of each window, 2: global mean (kernel = t_in, t_out = 1).

struct Params {
    lanes: u32, // N * C
    t_in: u32,
    t_out: u32,
    kernel: u32,
    stride: u32,
    op: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> arg: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.lanes * p.t_out) {
        return;
    }
    let lane = i / p.t_out;
    let t = i % p.t_out;
    let base = lane * p.t_in + t * p.stride;
    if (p.op == 0u) {
        var best = base;
        for (var j = 1u; j < p.kernel; j++) {
            if (x[base + j] > x[best]) {
                best = base + j;
            }
        }
        y[i] = x[best];
        arg[i] = best - lane * p.t_in;
    } else if (p.op == 1u) {
        var s = 0.0;
        for (var j = 0u; j < p.kernel; j++) {
            s = s + x[base + j];
        }
        y[i] = s * (1.0 / f32(p.kernel));
        arg[i] = 0u;
    } else {
        var s = 0.0;
        for (var j = 0u; j < p.t_in; j++) {
            s = s + x[lane * p.t_in + j];
        }
        y[i] = s / f32(p.t_in);
        arg[i] = 0u;
    }
}
