// Moves the step cursor to the next batch.

@compute @workgroup_size(1)
fn main() {
    cursor[0] = cursor[0] + 1u;
}
