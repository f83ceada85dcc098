// Conv1d gradient reorder: g2[s * t_out + t, o] = g[s, o, t] (into the forward GEMM's row layout).

fn count() -> u32 {
    return p.rows * p.out_ch * p.t_out;
}

fn element(i: u32) {
    // (sample, step, channel)
    let at = unravel(i, p.t_out, p.out_ch);
    g2[i] = g[(at.x * p.out_ch + at.z) * p.t_out + at.y];
}
