// Pooling backward as a gather over the windows that contain each input step, in ascending window order.
// op 0: max (only the window's chosen step gets its gradient), 1: mean, 2: global mean.

struct Params {
    lanes: u32,
    t_in: u32,
    t_out: u32,
    kernel: u32,
    stride: u32,
    op: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> arg: array<u32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.lanes * p.t_in) {
        return;
    }
    let lane = i / p.t_in;
    let q = i % p.t_in;
    if (p.op == 2u) {
        dx[i] = dy[lane] / f32(p.t_in);
        return;
    }
    // Windows t with t * stride <= q < t * stride + kernel.
    var t_lo = 0u;
    if (q + 1u > p.kernel) {
        t_lo = (q + 1u - p.kernel + p.stride - 1u) / p.stride;
    }
    let t_hi = min(q / p.stride + 1u, p.t_out);
    var acc = 0.0;
    let inv = 1.0 / f32(p.kernel);
    for (var t = t_lo; t < t_hi; t++) {
        let o = lane * p.t_out + t;
        if (p.op == 0u) {
            if (arg[o] == q) {
                acc = acc + dy[o];
            }
        } else {
            acc = acc + dy[o] * inv;
        }
    }
    dx[i] = acc;
}
