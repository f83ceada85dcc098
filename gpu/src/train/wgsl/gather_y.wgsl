// Copies this step's labels and, for distillation, the teacher's logits (see gather_x.wgsl).

fn count() -> u32 {
    return p.rows * p.classes;
}

fn element(i: u32) {
    let r = i / p.classes;
    let j = i % p.classes;
    let src = source_row(r);
    if (j == 0u) {
        y[r] = labels[src];
    }
    t[i] = teacher[src * p.classes + j];
}
