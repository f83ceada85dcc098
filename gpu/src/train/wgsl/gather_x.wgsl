// Copies the rows of this step's batch from the resident data set into the model input, in the order the
// host uploaded for the epoch. Rows are time-major (t * features + f); sequence models take [N, F, T],
// so the copy also transposes each row when time > 1 (as the CPU's Sequential::input_tensor).

fn count() -> u32 {
    return p.rows * p.in_len;
}

fn element(i: u32) {
    let src = source_row(i / p.in_len);
    let j = i % p.in_len;
    var col = j;
    if (p.time > 1u) {
        let f = j / p.time;
        let t = j % p.time;
        col = t * p.features + f;
    }
    x[i] = data[src * p.in_len + col];
}
