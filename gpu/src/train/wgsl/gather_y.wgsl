// Copies this step's labels and, for distillation, the teacher's logits (see gather_x.wgsl).

struct Params {
    rows: u32,
    classes: u32,
    batch: u32,
    pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cursor: array<u32>;
@group(0) @binding(2) var<storage, read> order: array<u32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> teacher: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<u32>;
@group(0) @binding(6) var<storage, read_write> t: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i >= p.rows * p.classes) {
        return;
    }
    let r = i / p.classes;
    let j = i % p.classes;
    let src = order[cursor[0] * p.batch + r];
    if (j == 0u) {
        y[r] = labels[src];
    }
    t[i] = teacher[src * p.classes + j];
}
