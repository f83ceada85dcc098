//! The uniform blocks of the training kernels: one Rust struct per WGSL `struct Params`.
//!
//! Each struct is `#[repr(C)]` plain old data declared once, by `uniform!`: the same field list gives the
//! Rust struct and its WGSL text ([`Uniform::WGSL`]), which [`K::wgsl`] puts at the head of every kernel
//! that uses the block, so the shaders do not restate it. Its bytes are the uniform block: the trainer's
//! plan builder writes them with one `bytemuck` cast, and nothing else encodes a uniform.
//! `Uniform::FIELDS` (built for the tests) lists the Rust layout (names, offsets, types, generated from the
//! struct itself) and [`Uniform::KERNELS`] the kernels that declare the block; a test parses every kernel's
//! assembled WGSL with naga and checks that its `Params` has exactly that layout under WGSL's alignment
//! rules, so a field type whose WGSL layout differs from the Rust one, or a kernel given another kernel's
//! block, fails the build's tests instead of shifting every later value.

use bytemuck::{Pod, Zeroable};

use super::kernels::K;

/// The WGSL scalar type of a uniform field.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    /// `u32`.
    U32,
    /// `f32`.
    F32,
}

/// One field of a uniform block as the Rust struct lays it out.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// The member's name (the same in Rust and WGSL).
    pub(crate) name: &'static str,
    /// Byte offset in the struct.
    pub(crate) offset: usize,
    /// The scalar type.
    pub(crate) scalar: Scalar,
}

/// Maps a Rust field type to its WGSL scalar.
#[cfg(test)]
trait ScalarType {
    const SCALAR: Scalar;
}

#[cfg(test)]
impl ScalarType for u32 {
    const SCALAR: Scalar = Scalar::U32;
}

#[cfg(test)]
impl ScalarType for f32 {
    const SCALAR: Scalar = Scalar::F32;
}

/// A kernel's uniform block (binding 0 of every training kernel that has one).
pub(crate) trait Uniform: Pod {
    /// The kernels whose WGSL declares this block as `Params`.
    const KERNELS: &'static [K];
    /// The fields in declaration order, with their offsets in the Rust struct (what the layout test
    /// compares with the WGSL).
    #[cfg(test)]
    const FIELDS: &'static [Field];
    /// The block's WGSL declaration, `struct Params`, written from the same field list as the Rust
    /// struct (the kernel's module starts with it, see [`K::wgsl`]).
    const WGSL: &'static str;
}

/// Declares a uniform block: the `#[repr(C)]` struct and its [`Uniform`] impl, from one field list.
macro_rules! uniform {
    (
        $(#[$meta:meta])*
        struct $name:ident for [$($kernel:ident),+] {
            $($(#[$field_meta:meta])* $field:ident: $ty:ty,)+
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
        pub(crate) struct $name {
            $($(#[$field_meta])* pub(crate) $field: $ty,)+
        }

        impl Uniform for $name {
            const KERNELS: &'static [K] = &[$(K::$kernel),+];
            #[cfg(test)]
            const FIELDS: &'static [Field] = &[$(Field {
                name: stringify!($field),
                offset: std::mem::offset_of!($name, $field),
                scalar: <$ty as ScalarType>::SCALAR,
            }),+];
            const WGSL: &'static str = concat!(
                "struct Params {\n",
                $("    ", stringify!($field), ": ", stringify!($ty), ",\n",)+
                "}\n",
            );
        }
    };
}

uniform! {
    /// `c[m, n] = a[m, k] * b[k, n] (+ bias[n])`, with `a` and `b` read through strides (`matmul.wgsl`).
    struct MatmulParams for [Matmul] {
        /// Output rows.
        m: u32,
        /// Output columns.
        n: u32,
        /// The summed dimension.
        k: u32,
        /// Stride of `a` between rows.
        a_row: u32,
        /// Stride of `a` between columns.
        a_col: u32,
        /// Stride of `b` between rows.
        b_row: u32,
        /// Stride of `b` between columns.
        b_col: u32,
        /// [`MatmulParams::ADD_BIAS`] or 0.
        flags: u32,
    }
}

impl MatmulParams {
    /// Flag: add `bias[col]` to every output.
    pub(crate) const ADD_BIAS: u32 = 1;
}

uniform! {
    /// Column sums of a `[rows, cols]` matrix, the bias gradient (`colsum.wgsl`).
    struct ColSumParams for [ColSum] {
        /// Rows summed.
        rows: u32,
        /// Columns (one sum each).
        cols: u32,
    }
}

uniform! {
    /// An element-wise activation or its derivative (`act_fwd.wgsl`, `act_bwd.wgsl`).
    struct ActParams for [ActFwd, ActBwd] {
        /// Values to process.
        len: u32,
        /// The activation's code ([`super::Activation::code`]).
        op: u32,
        /// Lower bound of a clamp.
        lo: f32,
        /// Upper bound of a clamp.
        hi: f32,
    }
}

uniform! {
    /// The geometry of a conv1d layer over a batch, for im2col and the gather col2im (`im2col.wgsl`,
    /// `col2im.wgsl`).
    struct ConvParams for [Im2Col, Col2Im] {
        /// Samples.
        rows: u32,
        /// Input channels.
        c_in: u32,
        /// Input steps.
        t_in: u32,
        /// Output steps.
        t_out: u32,
        /// Kernel taps.
        kernel: u32,
        /// Step between output positions.
        stride: u32,
        /// Spacing between taps.
        dilation: u32,
        /// Zero steps on the left.
        pad: u32,
    }
}

uniform! {
    /// The reorder between the conv GEMM's `[N * T_out, O]` rows and the `[N, O, T_out]` layout
    /// (`conv_out.wgsl`, `conv_grad.wgsl`).
    struct ConvReorderParams for [ConvOut, ConvGrad] {
        /// Samples.
        rows: u32,
        /// Output channels.
        out_ch: u32,
        /// Output steps.
        t_out: u32,
        /// Padding to 16 bytes.
        pad0: u32,
    }
}

uniform! {
    /// Pooling over time on `[N, C, T]` lanes (`pool_fwd.wgsl`, `pool_bwd.wgsl`).
    struct PoolParams for [PoolFwd, PoolBwd] {
        /// `N * C`.
        lanes: u32,
        /// Input steps.
        t_in: u32,
        /// Output steps.
        t_out: u32,
        /// Window length.
        kernel: u32,
        /// Step between windows.
        stride: u32,
        /// [`PoolParams::MAX`], [`PoolParams::MEAN`] or [`PoolParams::GLOBAL_MEAN`].
        op: u32,
        /// Padding to 32 bytes.
        pad0: u32,
        /// Padding to 32 bytes.
        pad1: u32,
    }
}

impl PoolParams {
    /// Windowed maximum.
    pub(crate) const MAX: u32 = 0;
    /// Windowed mean.
    pub(crate) const MEAN: u32 = 1;
    /// Mean over all steps (`kernel = t_in`, `t_out = 1`).
    pub(crate) const GLOBAL_MEAN: u32 = 2;
}

uniform! {
    /// The gather of one batch's model input from the data set (`gather_x.wgsl`).
    struct GatherXParams for [GatherX] {
        /// Rows in this step.
        rows: u32,
        /// Values per row.
        in_len: u32,
        /// Time steps per row (rows of more than one step are transposed to `[F, T]`).
        time: u32,
        /// Features per step.
        features: u32,
        /// Rows per full batch: the step starts at `order[cursor * batch]`.
        batch: u32,
        /// Padding to 32 bytes.
        pad0: u32,
        /// Padding to 32 bytes.
        pad1: u32,
        /// Padding to 32 bytes.
        pad2: u32,
    }
}

uniform! {
    /// The gather of one batch's labels and teacher logits (`gather_y.wgsl`).
    struct GatherYParams for [GatherY] {
        /// Rows in this step.
        rows: u32,
        /// Classes (teacher logits per row).
        classes: u32,
        /// Rows per full batch.
        batch: u32,
        /// Padding to 16 bytes.
        pad0: u32,
    }
}

uniform! {
    /// The loss and its gradient over one batch (`loss.wgsl`).
    struct LossParams for [Loss] {
        /// Rows in this step.
        rows: u32,
        /// Classes.
        classes: u32,
        /// [`LossParams::CROSS_ENTROPY`] or [`LossParams::DISTILL`].
        mode: u32,
        /// Padding before the floats.
        pad0: u32,
        /// Weight of the distillation's soft term.
        alpha: f32,
        /// Distillation temperature.
        temperature: f32,
        /// Padding to 32 bytes.
        pad1: f32,
        /// Padding to 32 bytes.
        pad2: f32,
    }
}

impl LossParams {
    /// Class-weighted softmax cross-entropy.
    pub(crate) const CROSS_ENTROPY: u32 = 0;
    /// The distillation loss.
    pub(crate) const DISTILL: u32 = 1;
}

uniform! {
    /// One optimizer step on one parameter tensor (`optim.wgsl`).
    struct OptimParams for [Optim] {
        /// Values in the tensor.
        len: u32,
        /// [`OptimParams::ADAM`] or [`OptimParams::SGD`].
        kind: u32,
        /// 1 when the tensor has a pruning mask.
        has_mask: u32,
        /// 1 for Nesterov momentum.
        nesterov: u32,
        /// Learning rate (SGD; Adam's comes from the step table).
        lr: f32,
        /// Adam's first-moment decay.
        beta1: f32,
        /// Adam's second-moment decay.
        beta2: f32,
        /// Adam's denominator epsilon.
        eps: f32,
        /// L2 penalty.
        weight_decay: f32,
        /// SGD momentum.
        momentum: f32,
        /// Padding to 48 bytes.
        pad0: f32,
        /// Padding to 48 bytes.
        pad1: f32,
    }
}

impl OptimParams {
    /// Adam.
    pub(crate) const ADAM: u32 = 0;
    /// SGD.
    pub(crate) const SGD: u32 = 1;
}

/// Every uniform block, as `(kernels, WGSL, fields, size)`.
macro_rules! every_block {
    ($($name:ident),+ $(,)?) => {
        /// The WGSL `struct Params` of kernel `k`'s uniform block, or `None` for a kernel without one.
        pub(crate) fn block(k: K) -> Option<&'static str> {
            [$(($name::KERNELS, $name::WGSL)),+]
                .into_iter()
                .find(|(kernels, _)| kernels.contains(&k))
                .map(|(_, wgsl)| wgsl)
        }

        /// Every uniform block: its kernels, its fields and its size in Rust.
        #[cfg(test)]
        fn blocks() -> Vec<(&'static [K], &'static [Field], usize)> {
            vec![$(($name::KERNELS, $name::FIELDS, std::mem::size_of::<$name>())),+]
        }
    };
}

every_block!(
    MatmulParams,
    ColSumParams,
    ActParams,
    ConvParams,
    ConvReorderParams,
    PoolParams,
    GatherXParams,
    GatherYParams,
    LossParams,
    OptimParams,
);

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::naga;

    /// A block's members as `(name, offset, scalar)`.
    type Members = Vec<(String, usize, Scalar)>;

    /// The WGSL uniform block of kernel `k` as `(size, members)`, from naga's parse.
    fn wgsl_block(k: K) -> Option<(usize, Members)> {
        let module = naga::front::wgsl::parse_str(&k.wgsl())
            .unwrap_or_else(|e| panic!("{k:?}: the WGSL does not parse: {e}"));
        let (_, var) = module
            .global_variables
            .iter()
            .find(|(_, v)| v.space == naga::AddressSpace::Uniform)?;
        let naga::TypeInner::Struct { members, span } = &module.types[var.ty].inner else {
            panic!("{k:?}: the uniform is not a struct");
        };
        let fields = members
            .iter()
            .map(|m| {
                let scalar = match module.types[m.ty].inner {
                    naga::TypeInner::Scalar(naga::Scalar {
                        kind: naga::ScalarKind::Uint,
                        width: 4,
                    }) => Scalar::U32,
                    naga::TypeInner::Scalar(naga::Scalar {
                        kind: naga::ScalarKind::Float,
                        width: 4,
                    }) => Scalar::F32,
                    ref other => panic!("{k:?}: member {:?} has type {other:?}", m.name),
                };
                (
                    m.name.clone().unwrap_or_default(),
                    m.offset as usize,
                    scalar,
                )
            })
            .collect();
        Some((*span as usize, fields))
    }

    /// Each Rust block has the layout of the `Params` struct of every kernel that uses it: the same
    /// members, names, offsets and scalar types, and the same size.
    #[test]
    fn every_uniform_matches_its_wgsl_struct() {
        for (kernels, fields, size) in blocks() {
            let want: Members = fields
                .iter()
                .map(|f| (f.name.to_string(), f.offset, f.scalar))
                .collect();
            for &k in kernels {
                let (span, got) =
                    wgsl_block(k).unwrap_or_else(|| panic!("{k:?} declares no uniform block"));
                assert_eq!(got, want, "{k:?}: WGSL members differ from the Rust struct");
                assert_eq!(
                    span, size,
                    "{k:?}: WGSL struct size differs from the Rust struct"
                );
            }
        }
    }

    /// The Rust structs have no hidden padding: their fields tile the struct, 4 bytes each.
    #[test]
    fn every_uniform_is_packed_words() {
        for (kernels, fields, size) in blocks() {
            assert_eq!(size, fields.len() * 4, "{kernels:?}");
            for (i, f) in fields.iter().enumerate() {
                assert_eq!(f.offset, i * 4, "{kernels:?}: {}", f.name);
            }
        }
    }

    /// Every kernel with a uniform binding has exactly one Rust block, and the kernel without one has none.
    #[test]
    fn every_kernel_with_a_uniform_has_one_block() {
        let blocks = blocks();
        for k in K::ALL {
            let owners = blocks.iter().filter(|(ks, _, _)| ks.contains(&k)).count();
            let has_uniform = wgsl_block(k).is_some();
            assert_eq!(owners, usize::from(has_uniform), "{k:?}");
            let first = k.bindings().first().copied();
            assert_eq!(
                first == Some(super::super::kernels::B::U),
                has_uniform,
                "{k:?}"
            );
        }
    }

    /// The bytes written to the GPU are the fields in order, little-endian words.
    #[test]
    fn the_encoding_is_the_fields_in_order() {
        let p = LossParams {
            rows: 7,
            classes: 3,
            mode: LossParams::DISTILL,
            pad0: 0,
            alpha: 0.25,
            temperature: 2.0,
            pad1: 0.0,
            pad2: 0.0,
        };
        let words: [u32; 8] = bytemuck::cast(p);
        assert_eq!(
            words,
            [7, 3, 1, 0, 0.25f32.to_bits(), 2.0f32.to_bits(), 0, 0]
        );
    }
}
