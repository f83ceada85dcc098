// The input gradient of Conv1d from the im2col gradient: dx[s, c, q] sums dcols over every (t, kk) with
// t * stride + kk * dilation - pad == q. A gather (one invocation per input value) instead of the CPU's
// scatter, so no two invocations write the same value; the terms are added in ascending t.

fn count() -> u32 {
    return p.rows * p.c_in * p.t_in;
}

fn element(i: u32) {
    let at = unravel(i, p.c_in, p.t_in);
    let s = at.x;
    let c = at.y;
    let q = at.z;
    let ck = p.c_in * p.kernel;
    var acc = 0.0;
    // Ascending t means descending kk.
    for (var j = 0u; j < p.kernel; j++) {
        let kk = p.kernel - 1u - j;
        let pos = q + p.pad; // position in the padded input
        let off = kk * p.dilation;
        if (pos < off) {
            continue;
        }
        let base = pos - off;
        if (base % p.stride != 0u) {
            continue;
        }
        let t = base / p.stride;
        if (t >= p.t_out) {
            continue;
        }
        acc = acc + dcols[(s * p.t_out + t) * ck + c * p.kernel + kk];
    }
    dx[i] = acc;
}
