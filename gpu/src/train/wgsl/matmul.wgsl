// C[M, N] = A[M, K] * B[K, N] (+ bias[N]), with A and B read through arbitrary row/column strides so one
// kernel covers X * W^T (forward), dY^T * X (weight gradient) and dY * W (input gradient).
// Each workgroup computes a 64x64 tile of C; each invocation a 4x4 block of it, with the K loop staged
// through 64x16 tiles of A and B in workgroup memory. Every output element sums its K products in
// ascending k order, so results do not depend on the schedule.

const TILE: u32 = 64u;
const KT: u32 = 16u;

var<workgroup> ta: array<array<f32, 64>, 16>; // [k][row]
var<workgroup> tb: array<array<f32, 64>, 16>; // [k][col]

@compute @workgroup_size(16, 16)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let flat = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            acc[i][j] = 0.0;
        }
    }
    let tiles = (p.k + KT - 1u) / KT;
    for (var t = 0u; t < tiles; t++) {
        let k0 = t * KT;
        // 1024 values of each tile, 4 per invocation.
        for (var e = 0u; e < 4u; e++) {
            let idx = flat + e * 256u;
            let kk = idx / TILE;
            let rr = idx % TILE;
            let gk = k0 + kk;
            let gr = row0 + rr;
            var va = 0.0;
            if (gk < p.k && gr < p.m) {
                va = a[gr * p.a_row + gk * p.a_col];
            }
            ta[kk][rr] = va;
            let gc = col0 + rr;
            var vb = 0.0;
            if (gk < p.k && gc < p.n) {
                vb = b[gk * p.b_row + gc * p.b_col];
            }
            tb[kk][rr] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var ra: array<f32, 4>;
            var rb: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ra[i] = ta[kk][lid.y + 16u * i];
                rb[i] = tb[kk][lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = acc[i][j] + ra[i] * rb[j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y + 16u * i;
        if (r >= p.m) {
            continue;
        }
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (col < p.n) {
                var v = acc[i][j];
                if ((p.flags & 1u) != 0u) {
                    v = v + bias[col];
                }
                c[r * p.n + col] = v;
            }
        }
    }
}
