// Conv1d gradient reorder: g2[s * t_out + t, o] = g[s, o, t] (into the forward GEMM's row layout).

struct Params {
    rows: u32,
    out_ch: u32,
    t_out: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> g2: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.rows * p.out_ch * p.t_out) {
        return;
    }
    let o = i % p.out_ch;
    let st = i / p.out_ch;
    let t = st % p.t_out;
    let s = st / p.t_out;
    g2[i] = g[(s * p.out_ch + o) * p.t_out + t];
}
