// out[j] = sum over i of x[i * cols + j], summed in ascending i (the bias gradient).

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        s = s + x[i * p.cols + j];
    }
    out[j] = s;
}
