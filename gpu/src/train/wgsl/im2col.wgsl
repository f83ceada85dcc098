// cols[(s * t_out + t) * (c_in * k) + c * k + kk] = x[s, c, t * stride + kk * dilation - pad]
// (zero where that position falls in the causal left padding), as the CPU's Conv1d::im2col.

fn count() -> u32 {
    return p.rows * p.t_out * (p.c_in * p.kernel);
}

fn element(i: u32) {
    let ck = p.c_in * p.kernel;
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
