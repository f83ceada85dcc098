// Conv1d output reorder: y[s, o, t] = y2[s * t_out + t, o] + bias[o] (the GEMM's [N * T_out, O] rows into
// the [N, O, T_out] layout).

struct Params {
    rows: u32,
    out_ch: u32,
    t_out: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y2: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.rows * p.out_ch * p.t_out) {
        return;
    }
    let t = i % p.t_out;
    let so = i / p.t_out;
    let o = so % p.out_ch;
    let s = so / p.out_ch;
    y[i] = y2[(s * p.t_out + t) * p.out_ch + o] + bias[o];
}
