// Conv1d output reorder: y[s, o, t] = y2[s * t_out + t, o] + bias[o] (the GEMM's [N * T_out, O] rows into
// the [N, O, T_out] layout).

fn count() -> u32 {
    return p.rows * p.out_ch * p.t_out;
}

fn element(i: u32) {
    let t = i % p.t_out;
    let so = i / p.t_out;
    let o = so % p.out_ch;
    let s = so / p.out_ch;
    y[i] = y2[(s * p.t_out + t) * p.out_ch + o] + bias[o];
}
