// Element-wise activation forward: y = f(x).
// op: 0 ReLU, 1 ReLU6, 2 Clamp(lo, hi), 3 Tanh, 4 Sigmoid.

fn count() -> u32 {
    return p.len;
}

fn element(i: u32) {
    let v = x[i];
    var r = v;
    switch p.op {
        case 0u: { r = max(v, 0.0); }
        case 1u: { r = min(max(v, 0.0), 6.0); }
        case 2u: { r = min(max(v, p.lo), p.hi); }
        case 3u: { r = tanh(v); }
        default: { r = 1.0 / (1.0 + exp(-v)); }
    }
    y[i] = r;
}
