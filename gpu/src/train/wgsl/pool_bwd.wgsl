// Pooling backward as a gather over the windows that contain each input step, in ascending window order.
// op 0: max (only the window's chosen step gets its gradient), 1: mean, 2: global mean.

fn count() -> u32 {
    return p.lanes * p.t_in;
}

fn element(i: u32) {
    let lane = i / p.t_in;
    let q = i % p.t_in;
    if (p.op == 2u) {
        dx[i] = dy[lane] / f32(p.t_in);
        return;
    }
    // Windows t with t * stride <= q < t * stride + kernel.
    var t_lo = 0u;
    if (q + 1u > p.kernel) {
        t_lo = (q + 1u - p.kernel + p.stride - 1u) / p.stride;
    }
    let t_hi = min(q / p.stride + 1u, p.t_out);
    var acc = 0.0;
    let inv = 1.0 / f32(p.kernel);
    for (var t = t_lo; t < t_hi; t++) {
        let o = lane * p.t_out + t;
        if (p.op == 0u) {
            if (arg[o] == q) {
                acc = acc + dy[o];
            }
        } else {
            acc = acc + dy[o] * inv;
        }
    }
    dx[i] = acc;
}
