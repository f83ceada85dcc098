// Element-wise activation backward: dx = dy * f'(cached), where `cached` is the layer input for
// ReLU, ReLU6 and Clamp and the layer output for Tanh and Sigmoid (as on the CPU).
// op: 0 ReLU, 1 ReLU6, 2 Clamp(lo, hi), 3 Tanh, 4 Sigmoid.

fn count() -> u32 {
    return p.len;
}

fn element(i: u32) {
    let c = cached[i];
    var d = 0.0;
    switch p.op {
        case 0u: { d = select(0.0, 1.0, c > 0.0); }
        case 1u: { d = select(0.0, 1.0, c > 0.0 && c < 6.0); }
        case 2u: { d = select(0.0, 1.0, c >= p.lo && c <= p.hi); }
        case 3u: { d = 1.0 - c * c; }
        default: { d = c * (1.0 - c); }
    }
    dx[i] = dy[i] * d;
}
