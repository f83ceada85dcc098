// cols[(s * t_out + t) * (c_in * k) + c * k + kk] = x[s, c, t * stride + kk * dilation - pad]
// (zero where that position falls in the causal left padding), as the CPU's Conv1d::im2col.

struct Params {
    rows: u32, // samples
    c_in: u32,
    t_in: u32,
    t_out: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    let ck = p.c_in * p.kernel;
    if (i >= p.rows * p.t_out * ck) {
        return;
    }
    let row = i / ck;
    let col = i % ck;
    let s = row / p.t_out;
    let t = row % p.t_out;
    let c = col / p.kernel;
    let kk = col % p.kernel;
    let pos = t * p.stride + kk * p.dilation;
    var v = 0.0;
    if (pos >= p.pad) {
        v = x[(s * p.c_in + c) * p.t_in + pos - p.pad];
    }
    cols[i] = v;
}
