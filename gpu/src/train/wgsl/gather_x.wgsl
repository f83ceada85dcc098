// Copies the rows of this step's batch from the resident data set into the model input, in the order the
// host uploaded for the epoch. Rows are time-major (t * features + f); sequence models take [N, F, T],
// so the copy also transposes each row when time > 1 (as the CPU's Sequential::input_tensor).

struct Params {
    rows: u32,
    in_len: u32,
    time: u32,
    features: u32,
    batch: u32, // rows per full batch: this step starts at order[cursor * batch]
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cursor: array<u32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> data: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.rows * p.in_len) {
        return;
    }
    let r = i / p.in_len;
    let j = i % p.in_len;
    let src = order[cursor[0] * p.batch + r];
    var col = j;
    if (p.time > 1u) {
        let f = j / p.time;
        let t = j % p.time;
        col = t * p.features + f;
    }
    x[i] = data[src * p.in_len + col];
}
