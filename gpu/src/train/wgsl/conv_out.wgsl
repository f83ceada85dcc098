// Conv1d output reorder: y[s, o, t] = y2[s * t_out + t, o] + bias[o] (the GEMM's [N * T_out, O] rows into
// the [N, O, T_out] layout).

fn count() -> u32 {
    return p.rows * p.out_ch * p.t_out;
}

fn element(i: u32) {
    // (sample, channel, step)
    let at = unravel(i, p.out_ch, p.t_out);
    y[i] = y2[(at.x * p.t_out + at.z) * p.out_ch + at.y] + bias[at.y];
}
