// Softmax cross-entropy with class weights (mode 0), or the distillation loss
// alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE (mode 1), and the gradient with
// respect to the logits, for one batch, in one workgroup (as host/src/model/loss.rs and host/src/distill.rs):
// CE = sum_i w[y_i] * (logsumexp(z_i) - z_i[y_i]) / sum_i w[y_i], its gradient w[y_i] * (p_i - onehot) / sum w;
// the soft term is the plain mean over the batch, its gradient alpha * T * (p_s - p_t) / N.
// Per-row values go through workgroup memory and invocation 0 adds them in a fixed order, so the sums do
// not depend on the schedule. The batch's totals are added to `stats`:
// [loss sum (f32 bits), weight sum (f32 bits), correct, first non-finite step + 1].

var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_w: array<f32, 256>;
var<workgroup> part_kl: array<f32, 256>;
var<workgroup> part_c: array<u32, 256>;
var<workgroup> inv_wsum: f32;

fn finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// Value `i` of the student's logits, or of the teacher's where `of_teacher`.
fn logit(of_teacher: bool, i: u32) -> f32 {
    if (of_teacher) {
        return teacher[i];
    }
    return logits[i];
}

// log(sum(exp(z / temp))) over row `r` of the student's or the teacher's logits `z`, shifted by the row
// maximum.
fn log_z(of_teacher: bool, r: u32, temp: f32) -> f32 {
    let base = r * p.classes;
    var m = logit(of_teacher, base) / temp;
    for (var j = 1u; j < p.classes; j++) {
        m = max(m, logit(of_teacher, base + j) / temp);
    }
    var s = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        s = s + exp(logit(of_teacher, base + j) / temp - m);
    }
    return m + log(s);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    var loss = 0.0;
    var wsum = 0.0;
    var kl = 0.0;
    var correct = 0u;
    for (var r = lid; r < p.rows; r += 256u) {
        let base = r * p.classes;
        let y = labels[r];
        let w = class_w[y];
        let lz = log_z(false, r, 1.0);
        loss = loss + w * (lz - logits[base + y]);
        wsum = wsum + w;
        var best = 0u;
        for (var j = 0u; j < p.classes; j++) {
            let v = logits[base + j];
            if (v > logits[base + best]) {
                best = j;
            }
            var onehot = 0.0;
            if (j == y) {
                onehot = 1.0;
            }
            grad[base + j] = w * (exp(v - lz) - onehot);
        }
        if (best == y) {
            correct = correct + 1u;
        }
        if (p.mode == 1u) {
            let t = p.temperature;
            let lzs = log_z(false, r, t);
            let lzt = log_z(true, r, t);
            for (var j = 0u; j < p.classes; j++) {
                let lpt = teacher[base + j] / t - lzt;
                let lps = logits[base + j] / t - lzs;
                let pt = exp(lpt);
                if (pt > 0.0) {
                    kl = kl + pt * (lpt - lps);
                }
            }
        }
    }
    part_loss[lid] = loss;
    part_w[lid] = wsum;
    part_kl[lid] = kl;
    part_c[lid] = correct;
    workgroupBarrier();
    if (lid == 0u) {
        var total = 0.0;
        var ws = 0.0;
        var kls = 0.0;
        var c = 0u;
        for (var i = 0u; i < 256u; i++) {
            total = total + part_loss[i];
            ws = ws + part_w[i];
            kls = kls + part_kl[i];
            c = c + part_c[i];
        }
        var ce = 0.0;
        var inv = 0.0;
        if (ws > 0.0) {
            ce = total / ws;
            inv = 1.0 / ws;
        }
        inv_wsum = inv;
        var batch_loss = ce;
        var add_loss = total;
        var add_w = ws;
        if (p.mode == 1u) {
            let n = f32(p.rows);
            let t = p.temperature;
            batch_loss = p.alpha * (t * t * kls / n) + (1.0 - p.alpha) * ce;
            add_loss = batch_loss * n;
            add_w = n;
        }
        stats[0] = bitcast<u32>(bitcast<f32>(stats[0]) + add_loss);
        stats[1] = bitcast<u32>(bitcast<f32>(stats[1]) + add_w);
        stats[2] = stats[2] + c;
        if (!finite(batch_loss) && stats[3] == 0u) {
            stats[3] = cursor[0] + 1u;
        }
    }
    workgroupBarrier();
    let inv = inv_wsum;
    for (var r = lid; r < p.rows; r += 256u) {
        let base = r * p.classes;
        if (p.mode == 0u) {
            for (var j = 0u; j < p.classes; j++) {
                grad[base + j] = grad[base + j] * inv;
            }
        } else {
            let t = p.temperature;
            let a = p.alpha * t / f32(p.rows);
            let lzs = log_z(false, r, t);
            let lzt = log_z(true, r, t);
            for (var j = 0u; j < p.classes; j++) {
                let ps = exp(logits[base + j] / t - lzs);
                let pt = exp(teacher[base + j] / t - lzt);
                grad[base + j] = a * (ps - pt) + (1.0 - p.alpha) * (grad[base + j] * inv);
            }
        }
    }
}
