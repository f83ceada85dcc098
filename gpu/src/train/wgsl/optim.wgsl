// One optimizer step on one parameter tensor, as host/src/model/optim.rs:
// kind 0 Adam (with L2 weight decay added to the gradient, bias corrections from the host per step),
// kind 1 SGD (momentum, Nesterov, weight decay; the first step sets the momentum buffer to the gradient).
// With a pruning mask the gradient is masked first and pruned weights are set to exactly +0.0 afterwards.
// table[step] = (Adam step size lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t), 1 on the first step of the run, 0).

fn count() -> u32 {
    return p.len;
}

fn element(i: u32) {
    let s = table[cursor[0]];
    var mk = 1.0;
    if (p.has_mask != 0u) {
        mk = mask[i];
    }
    var pv = param[i];
    let g = grad[i] * mk + p.weight_decay * pv;
    if (p.kind == 0u) {
        let mv = p.beta1 * m[i] + (1.0 - p.beta1) * g;
        let vv = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
        m[i] = mv;
        v[i] = vv;
        let denom = sqrt(vv) * s.y + p.eps;
        pv = pv - s.x * mv / denom;
    } else if (p.momentum == 0.0) {
        pv = pv - p.lr * g;
    } else {
        var b = p.momentum * m[i] + g;
        if (s.z != 0.0) {
            b = g;
        }
        m[i] = b;
        var d = b;
        if (p.nesterov != 0u) {
            d = g + p.momentum * b;
        }
        pv = pv - p.lr * d;
    }
    if (mk == 0.0) {
        pv = 0.0;
    }
    param[i] = pv;
}
