// Conv1d gradient reorder: g2[s * t_out + t, o] = g[s, o, t] (into the forward GEMM's row layout).

fn count() -> u32 {
    return p.rows * p.out_ch * p.t_out;
}

fn element(i: u32) {
    let o = i % p.out_ch;
    let st = i / p.out_ch;
    let t = st % p.t_out;
    let s = st / p.t_out;
    g2[i] = g[(s * p.out_ch + o) * p.t_out + t];
}
