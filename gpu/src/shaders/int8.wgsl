// Int8 inference kernels, bit-exact with tickq-core (docs/ARITHMETIC.md).
//
// Activations are stored one i32 per element (values in [-128, 127]), time-major per sample:
// element (n, t, c) of a layer with shape (T, C) is at (n * T + t) * C + c.
// Each output element is computed by exactly one invocation, with integer arithmetic only,
// so the results do not depend on scheduling.
//
// Dynamically quantized blobs (int8 mantissas with a per-sample exponent) run through dense_dyn and
// dense_dyn_round at the end of this file.
//
// Every entry point shares one binding layout:
//   0: P (uniform)          the layer's shapes and quantization
//   1: xa (storage, read)   the first input
//   2: xb (storage, read)   the second input (Add), else a dummy
//   3: w (storage, read)    weights: packed int8 rows, sparse entries, or the LUT
//   4: ch (storage, read)   per-channel (bias, multiplier, shift, first entry, end entry, 0, 0, 0)
//   5: y (storage, rw)      the output

struct P {
    n: u32,         // samples in the batch
    in_t: u32,
    in_c: u32,
    out_t: u32,
    out_c: u32,
    kernel: u32,
    stride: u32,
    dilation: u32,
    pad_rows: u32,  // causal pad rows in front of the input (Conv1d)
    row_words: u32, // u32 words per packed weight row
    in_zp: i32,
    in_b_zp: i32,
    out_zp: i32,
    act_min: i32,
    act_max: i32,
    mult: i32,      // the single multiplier of pools and Add
    shift: u32,
    wa: i32,
    wb: i32,
    total: u32,     // output elements in the batch
    bias_exp: i32,  // the bias exponent of a dynamic Dense
    pad0: u32,
    pad1: u32,
    pad2: u32,
};

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> xa: array<i32>;
@group(0) @binding(2) var<storage, read> xb: array<i32>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(4) var<storage, read> ch: array<i32>;
@group(0) @binding(5) var<storage, read_write> y: array<i32>;

const WG: u32 = 64u;

fn linear(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.y * nwg.x + wid.x) * WG + lid;
}

// The exact 64-bit product a * b of two u32, as (lo, hi).
fn mul_u32_wide(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let lo = a0 * b0;
    let m1 = a1 * b0;
    let m2 = a0 * b1;
    let hi = a1 * b1;
    let mid = m1 + m2;
    let mid_carry = select(0u, 1u, mid < m1);
    let lo2 = lo + (mid << 16u);
    let lo_carry = select(0u, 1u, lo2 < lo);
    let hi2 = hi + (mid >> 16u) + (mid_carry << 16u) + lo_carry;
    return vec2<u32>(lo2, hi2);
}

// round(acc * mult / 2^shift), half away from zero, saturated to +-2^20 (far outside the int8 range, so the
// clamp that follows gives the same result as with the exact value). `mult` in [2^30, 2^31 - 1], `shift` in [1, 62].
//
// core computes p = acc * mult in i64 and (p + 2^(s-1) + (p >> 63)) >> s. For p < 0 that equals
// -((|p| + 2^(s-1)) >> s), so rounding the magnitude up at the half and restoring the sign is the same.
fn scale_round(acc: i32, mult: i32, shift: u32) -> i32 {
    let neg = acc < 0;
    // |acc| as u32; for -2^31 the bit pattern is already 2^31.
    let mag = select(bitcast<u32>(acc), 0u - bitcast<u32>(acc), neg);
    let prod = mul_u32_wide(mag, u32(mult));
    // Add 2^(shift - 1).
    let r = shift - 1u;
    var lo = prod.x;
    var hi = prod.y;
    if (r < 32u) {
        let add = 1u << r;
        let s = lo + add;
        hi = hi + select(0u, 1u, s < lo);
        lo = s;
    } else {
        hi = hi + (1u << (r - 32u));
    }
    // Shift right by `shift`.
    var q_lo: u32;
    var q_hi: u32;
    if (shift < 32u) {
        q_lo = (lo >> shift) | (hi << (32u - shift));
        q_hi = hi >> shift;
    } else {
        q_lo = hi >> (shift - 32u);
        q_hi = 0u;
    }
    let big = q_hi != 0u || q_lo > 0x100000u;
    let m = i32(select(q_lo, 0x100000u, big));
    return select(m, -m, neg);
}

fn requant(acc: i32, mult: i32, shift: u32) -> i32 {
    return clamp(scale_round(acc, mult, shift) + p.out_zp, p.act_min, p.act_max);
}

// Sign-extended int8 lane `lane` of a packed word.
fn lane_i8(word: u32, lane: u32) -> i32 {
    return extractBits(bitcast<i32>(word), lane * 8u, 8u);
}

// Dense and Conv1d over packed dense weights: one invocation per output element (n, t, o).
// Row o of the weights is `kernel * in_c` int8 values, tap-major, packed four per word (zero padded).
@compute @workgroup_size(64)
fn conv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let o = i % p.out_c;
    let nt = i / p.out_c;
    let t = nt % p.out_t;
    let n = nt / p.out_t;
    var acc = ch[o * 8u];
    let wrow = o * p.row_words;
    var j = 0u;
    var word = 0u;
    for (var k = 0u; k < p.kernel; k = k + 1u) {
        let row = i32(t * p.stride + k * p.dilation) - i32(p.pad_rows);
        let pad = row < 0;
        let base = (n * p.in_t + u32(max(row, 0))) * p.in_c;
        for (var c = 0u; c < p.in_c; c = c + 1u) {
            let lane = j & 3u;
            if (lane == 0u) { word = w[wrow + (j >> 2u)]; }
            let x = select(xa[base + c], p.in_zp, pad);
            acc = acc + lane_i8(word, lane) * x;
            j = j + 1u;
        }
    }
    y[i] = requant(acc, ch[o * 8u + 1u], u32(ch[o * 8u + 2u]));
}

// Dense over packed weights with both the row and the input four-aligned: the usual MLP case.
// The input is read as i32 elements, the weights one word (four int8 values) at a time.
@compute @workgroup_size(64)
fn dense4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let o = i % p.out_c;
    let n = i / p.out_c;
    var acc = ch[o * 8u];
    let wrow = o * p.row_words;
    let base = n * p.in_c;
    let full = p.in_c >> 2u;
    for (var q = 0u; q < full; q = q + 1u) {
        let word = w[wrow + q];
        let b = base + 4u * q;
        acc = acc + lane_i8(word, 0u) * xa[b] + lane_i8(word, 1u) * xa[b + 1u]
                  + lane_i8(word, 2u) * xa[b + 2u] + lane_i8(word, 3u) * xa[b + 3u];
    }
    for (var c = full * 4u; c < p.in_c; c = c + 1u) {
        let word = w[wrow + (c >> 2u)];
        acc = acc + lane_i8(word, c & 3u) * xa[base + c];
    }
    y[i] = requant(acc, ch[o * 8u + 1u], u32(ch[o * 8u + 2u]));
}

// Dense and Conv1d over sparse weights in CSR form: channel o owns entries [ch[o].first, ch[o].end);
// entry e is two words: (tap << 16 | input channel) and the int8 value.
@compute @workgroup_size(64)
fn conv_sparse(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let o = i % p.out_c;
    let nt = i / p.out_c;
    let t = nt % p.out_t;
    let n = nt / p.out_t;
    var acc = ch[o * 8u];
    let first = u32(ch[o * 8u + 3u]);
    let end = u32(ch[o * 8u + 4u]);
    let row0 = i32(t * p.stride) - i32(p.pad_rows);
    for (var e = first; e < end; e = e + 1u) {
        let at = w[2u * e];
        let v = bitcast<i32>(w[2u * e + 1u]);
        let row = row0 + i32((at >> 16u) * p.dilation);
        let pad = row < 0;
        let x = select(xa[(n * p.in_t + u32(max(row, 0))) * p.in_c + (at & 0xFFFFu)], p.in_zp, pad);
        acc = acc + v * x;
    }
    y[i] = requant(acc, ch[o * 8u + 1u], u32(ch[o * 8u + 2u]));
}

// Lut: y = table[x + 128]; the table is 256 i32 values in `w`.
@compute @workgroup_size(64)
fn lut(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    y[i] = bitcast<i32>(w[u32(xa[i] + 128) & 255u]);
}

// MaxPool1d: the maximum over the window, then the output clamp.
@compute @workgroup_size(64)
fn max_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let c = i % p.out_c;
    let nt = i / p.out_c;
    let t = nt % p.out_t;
    let n = nt / p.out_t;
    var m = -128;
    for (var k = 0u; k < p.kernel; k = k + 1u) {
        m = max(m, xa[(n * p.in_t + t * p.stride + k) * p.in_c + c]);
    }
    y[i] = clamp(m, p.act_min, p.act_max);
}

// AvgPool1d and GlobalAvgPool: requant(sum over the window of (x - in_zp)).
@compute @workgroup_size(64)
fn avg_pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let c = i % p.out_c;
    let nt = i / p.out_c;
    let t = nt % p.out_t;
    let n = nt / p.out_t;
    var acc = 0;
    for (var k = 0u; k < p.kernel; k = k + 1u) {
        acc = acc + xa[(n * p.in_t + t * p.stride + k) * p.in_c + c] - p.in_zp;
    }
    y[i] = requant(acc, p.mult, p.shift);
}

// Add: requant((a - za) * wa + (b - zb) * wb).
@compute @workgroup_size(64)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let acc = (xa[i] - p.in_zp) * p.wa + (xb[i] - p.in_b_zp) * p.wb;
    y[i] = requant(acc, p.mult, p.shift);
}

// The requantization alone, for property tests against requant::requantize: xa holds (acc, mult, shift, zp,
// min, max) per case, y gets the result.
@compute @workgroup_size(64)
fn requant_test(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let b = 6u * i;
    let v = scale_round(xa[b], xa[b + 1u], u32(xa[b + 2u]));
    y[i] = clamp(v + xa[b + 3u], xa[b + 4u], xa[b + 5u]);
}

// ---- Dynamic quantization (docs/ARITHMETIC.md, "Dynamic quantization") ----
//
// A dynamic layer's buffer holds the batch's n * C int8 mantissas and then one i32 exponent per sample.

// The exact |acc| * mult / 2^shift rounded half up, as (lo, hi) of the 64-bit result; `shift` in [1, 62].
fn scale_round_mag(mag: u32, mult: i32, shift: u32) -> vec2<u32> {
    let prod = mul_u32_wide(mag, u32(mult));
    let r = shift - 1u;
    var lo = prod.x;
    var hi = prod.y;
    if (r < 32u) {
        let s = lo + (1u << r);
        hi = hi + select(0u, 1u, s < lo);
        lo = s;
    } else {
        hi = hi + (1u << (r - 32u));
    }
    if (shift < 32u) {
        return vec2<u32>((lo >> shift) | (hi << (32u - shift)), hi >> shift);
    }
    return vec2<u32>(hi >> (shift - 32u), 0u);
}

// requant::scale_round for a multiplier below 1 (shift >= 31), where |result| <= |acc| fits i32.
fn scale_round_small(acc: i32, mult: i32, shift: u32) -> i32 {
    let neg = acc < 0;
    let mag = select(bitcast<u32>(acc), 0u - bitcast<u32>(acc), neg);
    let m = i32(scale_round_mag(mag, mult, shift).x);
    return select(m, -m, neg);
}

// clamp(requant::shift_saturating(b, s), -2^30, 2^30): b * 2^-s rounded half away from zero.
fn bias_shift(b: i32, s: i32) -> i32 {
    let neg = b < 0;
    let mag = select(bitcast<u32>(b), 0u - bitcast<u32>(b), neg);
    var m = 0u;
    if (s > 0) {
        if (s == 32) {
            m = select(0u, 1u, mag >= 0x80000000u);
        } else if (s < 32) {
            m = (mag + (1u << u32(s - 1))) >> u32(s);
        }
    } else {
        let l = u32(-s);
        if (mag != 0u) {
            if (l >= 31u || mag > (0x40000000u >> l)) {
                m = 0x40000000u;
            } else {
                m = mag << l;
            }
        }
    }
    m = min(m, 0x40000000u);
    return select(i32(m), -i32(m), neg);
}

// round(v / 2^k) half away from zero, for |v| < 2^31.
fn round_shift_i32(v: i32, k: u32) -> i32 {
    if (k == 0u) { return v; }
    let neg = v < 0;
    let mag = select(bitcast<u32>(v), 0u - bitcast<u32>(v), neg);
    var m = 0u;
    if (k < 32u) {
        m = (mag + (1u << (k - 1u))) >> k;
    }
    return select(i32(m), -i32(m), neg);
}

// Dynamic Dense, step 1: y[n][o] = scale_round(sum w * x + shifted bias, M[o]), the fused ReLU floor and the
// ReLU6 cap; written to the scratch buffer `y`. The input's exponents follow its mantissas in `xb`.
@compute @workgroup_size(64)
fn dense_dyn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let i = linear(wid, nwg, lid);
    if (i >= p.total) { return; }
    let o = i % p.out_c;
    let n = i / p.out_c;
    let e_in = xb[p.n * p.in_t * p.in_c + n];
    var acc = 0;
    let wrow = o * p.row_words;
    let base = n * p.in_c;
    for (var c = 0u; c < p.in_c; c = c + 1u) {
        let word = w[wrow + (c >> 2u)];
        acc = acc + lane_i8(word, c & 3u) * xa[base + c];
    }
    acc = acc + bias_shift(ch[o * 8u], e_in - p.bias_exp);
    var v = scale_round_small(acc, ch[o * 8u + 1u], u32(ch[o * 8u + 2u]));
    if (p.act_min == 0) { v = max(v, 0); }
    if (p.act_max != 127) {
        // shift_saturating(1, e_in - act_max): 2^l for a left shift, round(2^-s) for a right one.
        let s = e_in - p.act_max;
        if (s <= 0) {
            let l = u32(-s);
            if (l < 31u) { v = min(v, 1 << l); }
        } else {
            v = min(v, select(0, 1, s == 1));
        }
    }
    y[i] = v;
}

// Dynamic Dense, step 2, one invocation per sample: k = the smallest shift that brings max |y| into
// [-127, 127], the mantissas round(y / 2^k), and the exponent e_in + k after them.
@compute @workgroup_size(64)
fn dense_dyn_round(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let n = linear(wid, nwg, lid);
    if (n >= p.n) { return; }
    let base = n * p.out_c;
    var max_abs = 0;
    for (var o = 0u; o < p.out_c; o = o + 1u) {
        max_abs = max(max_abs, abs(xa[base + o]));
    }
    var k = 0u;
    while (k < 40u && round_shift_i32(max_abs, k) > 127) {
        k = k + 1u;
    }
    for (var o = 0u; o < p.out_c; o = o + 1u) {
        y[base + o] = clamp(round_shift_i32(xa[base + o], k), -127, 127);
    }
    y[p.n * p.out_c + n] = xb[p.n * p.in_t * p.in_c + n] + i32(k);
}
