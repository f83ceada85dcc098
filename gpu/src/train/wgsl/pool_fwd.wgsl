// Pooling over time on [N, C, T_in] lanes. op 0: max (first maximum wins, its lane index kept in `arg` for
// the backward pass), 1: mean of each window, 2: global mean (kernel = t_in, t_out = 1).

fn count() -> u32 {
    return p.lanes * p.t_out;
}

fn element(i: u32) {
    let lane = i / p.t_out;
    let t = i % p.t_out;
    let base = lane * p.t_in + t * p.stride;
    if (p.op == 0u) {
        var best = base;
        for (var j = 1u; j < p.kernel; j++) {
            if (x[base + j] > x[best]) {
                best = base + j;
            }
        }
        y[i] = x[best];
        arg[i] = best - lane * p.t_in;
    } else if (p.op == 1u) {
        var s = 0.0;
        for (var j = 0u; j < p.kernel; j++) {
            s = s + x[base + j];
        }
        y[i] = s * (1.0 / f32(p.kernel));
        arg[i] = 0u;
    } else {
        var s = 0.0;
        for (var j = 0u; j < p.t_in; j++) {
            s = s + x[lane * p.t_in + j];
        }
        y[i] = s / f32(p.t_in);
        arg[i] = 0u;
    }
}
