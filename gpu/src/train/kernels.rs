//! The training kernels: WGSL sources, their bind-group layouts and prebuilt dispatches.
//!
//! Unlike [`crate::Kernel`], which binds its buffers anew on every dispatch, a training step replays the same
//! dispatches over the same buffers thousands of times, so [`Op`] keeps its bind group and grid.

use crate::buffers::{Binding, Kernel, bind_group};
use crate::context::GpuContext;
use crate::error::GpuError;

use super::params;

/// One binding of a training kernel, as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum B {
    /// The uniform block, declared `p: Params` (always binding 0).
    U,
    /// A read-only storage buffer, with its WGSL `name: type`.
    R(&'static str),
    /// A read-write storage buffer, with its WGSL `name: type`.
    W(&'static str),
}

/// Every training kernel, one WGSL module each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum K {
    Matmul,
    ColSum,
    ActFwd,
    ActBwd,
    Im2Col,
    Col2Im,
    ConvOut,
    ConvGrad,
    PoolFwd,
    PoolBwd,
    GatherX,
    GatherY,
    Advance,
    Loss,
    Optim,
}

/// The entry point of every one-dimensional kernel: invocation `i` of a grid that may span two
/// dimensions (see [`crate::buffers::grid`]) handles element `i`, up to the kernel's `count()`; and the
/// coordinates of an element in a three-dimensional array, which most of them index.
const ONE_D_ENTRY: &str = "
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = (wid.y * nwg.x + wid.x) * 256u + li;
    if (i < count()) {
        element(i);
    }
}

// The coordinates (x, y, z) of element `i = (x * ny + y) * nz + z` of a row-major [_, ny, nz] array.
fn unravel(i: u32, ny: u32, nz: u32) -> vec3<u32> {
    let xy = i / nz;
    return vec3<u32>(xy / ny, xy % ny, i % nz);
}
";

/// The batch lookup of the gather kernels (which bind `cursor` and `order`, and whose block has `batch`).
const SOURCE_ROW: &str = "
// The data-set row of this step's batch row `r`: the host's epoch order, from the step cursor on.
fn source_row(r: u32) -> u32 {
    return order[cursor[0] * p.batch + r];
}
";

impl K {
    pub(crate) const ALL: [K; 15] = [
        K::Matmul,
        K::ColSum,
        K::ActFwd,
        K::ActBwd,
        K::Im2Col,
        K::Col2Im,
        K::ConvOut,
        K::ConvGrad,
        K::PoolFwd,
        K::PoolBwd,
        K::GatherX,
        K::GatherY,
        K::Advance,
        K::Loss,
        K::Optim,
    ];

    /// The kernel's label (also the name of its body, `wgsl/<label>.wgsl`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            K::Matmul => "matmul",
            K::ColSum => "colsum",
            K::ActFwd => "act_fwd",
            K::ActBwd => "act_bwd",
            K::Im2Col => "im2col",
            K::Col2Im => "col2im",
            K::ConvOut => "conv_out",
            K::ConvGrad => "conv_grad",
            K::PoolFwd => "pool_fwd",
            K::PoolBwd => "pool_bwd",
            K::GatherX => "gather_x",
            K::GatherY => "gather_y",
            K::Advance => "advance",
            K::Loss => "loss",
            K::Optim => "optim",
        }
    }

    /// The kernel's own WGSL: its functions, without the declarations [`K::wgsl`] puts before them.
    fn body(self) -> &'static str {
        match self {
            K::Matmul => include_str!("wgsl/matmul.wgsl"),
            K::ColSum => include_str!("wgsl/colsum.wgsl"),
            K::ActFwd => include_str!("wgsl/act_fwd.wgsl"),
            K::ActBwd => include_str!("wgsl/act_bwd.wgsl"),
            K::Im2Col => include_str!("wgsl/im2col.wgsl"),
            K::Col2Im => include_str!("wgsl/col2im.wgsl"),
            K::ConvOut => include_str!("wgsl/conv_out.wgsl"),
            K::ConvGrad => include_str!("wgsl/conv_grad.wgsl"),
            K::PoolFwd => include_str!("wgsl/pool_fwd.wgsl"),
            K::PoolBwd => include_str!("wgsl/pool_bwd.wgsl"),
            K::GatherX => include_str!("wgsl/gather_x.wgsl"),
            K::GatherY => include_str!("wgsl/gather_y.wgsl"),
            K::Advance => include_str!("wgsl/advance.wgsl"),
            K::Loss => include_str!("wgsl/loss.wgsl"),
            K::Optim => include_str!("wgsl/optim.wgsl"),
        }
    }

    /// The storage buffers, in binding order (after the uniform block, where the kernel has one).
    fn storage(self) -> &'static [B] {
        use B::{R, W};
        const X: B = R("x: array<f32>");
        const CURSOR: B = R("cursor: array<u32>");
        const ORDER: B = R("order: array<u32>");
        const LABELS: B = R("labels: array<u32>");
        const TEACHER: B = R("teacher: array<f32>");
        const DY: B = R("dy: array<f32>");
        const DX: B = W("dx: array<f32>");
        const Y: B = W("y: array<f32>");
        const BIAS: B = R("bias: array<f32>");
        const GRAD: B = R("grad: array<f32>");
        match self {
            K::Matmul => &[
                R("a: array<f32>"),
                R("b: array<f32>"),
                BIAS,
                W("c: array<f32>"),
            ],
            K::ColSum => &[X, W("out: array<f32>")],
            K::ActFwd => &[X, Y],
            K::ActBwd => &[DY, R("cached: array<f32>"), DX],
            K::Im2Col => &[X, W("cols: array<f32>")],
            K::Col2Im => &[R("dcols: array<f32>"), DX],
            K::ConvOut => &[R("y2: array<f32>"), BIAS, Y],
            K::ConvGrad => &[R("g: array<f32>"), W("g2: array<f32>")],
            K::PoolFwd => &[X, Y, W("arg: array<u32>")],
            K::PoolBwd => &[DY, R("arg: array<u32>"), DX],
            K::GatherX => &[CURSOR, ORDER, R("data: array<f32>"), W("x: array<f32>")],
            K::GatherY => &[
                CURSOR,
                ORDER,
                LABELS,
                TEACHER,
                W("y: array<u32>"),
                W("t: array<f32>"),
            ],
            K::Advance => &[W("cursor: array<u32>")],
            K::Loss => &[
                R("logits: array<f32>"),
                LABELS,
                TEACHER,
                R("class_w: array<f32>"),
                CURSOR,
                W("grad: array<f32>"),
                W("stats: array<u32>"),
            ],
            K::Optim => &[
                W("param: array<f32>"),
                GRAD,
                W("m: array<f32>"),
                W("v: array<f32>"),
                R("mask: array<f32>"),
                R("table: array<vec4<f32>>"),
                CURSOR,
            ],
        }
    }

    /// Whether the kernel runs one invocation per element: it takes [`ONE_D_ENTRY`] as its `main` and
    /// defines `count` and `element`.
    fn one_d(self) -> bool {
        !matches!(self, K::Matmul | K::ColSum | K::Advance | K::Loss)
    }

    /// The kernel's bindings in order: the uniform block first where it has one ([`params::block`]),
    /// then its storage buffers.
    pub(crate) fn bindings(self) -> Vec<B> {
        let uniform = params::block(self).map(|_| B::U);
        uniform
            .into_iter()
            .chain(self.storage().iter().copied())
            .collect()
    }

    /// The kernel's whole WGSL module: the uniform block's `struct Params` (written from its Rust struct),
    /// one declaration per binding (from [`K::bindings`], so the bind-group layout and the shader cannot
    /// disagree), the shared one-dimensional entry point where it takes one, the gathers' batch lookup,
    /// and its body.
    pub(crate) fn wgsl(self) -> String {
        let mut out = String::new();
        if let Some(params) = params::block(self) {
            out.push_str(params);
        }
        for (i, b) in self.bindings().into_iter().enumerate() {
            let decl = match b {
                B::U => "var<uniform> p: Params".to_string(),
                B::R(v) => format!("var<storage, read> {v}"),
                B::W(v) => format!("var<storage, read_write> {v}"),
            };
            out.push_str(&format!("@group(0) @binding({i}) {decl};\n"));
        }
        if self.one_d() {
            out.push_str(ONE_D_ENTRY);
        }
        if matches!(self, K::GatherX | K::GatherY) {
            out.push_str(SOURCE_ROW);
        }
        out.push_str(self.body());
        out
    }

    /// Invocations per workgroup of the 1-D kernels (the grid helper needs it).
    pub(crate) fn workgroup_size(self) -> u32 {
        match self {
            K::ColSum => 64,
            K::Advance => 1,
            _ => 256,
        }
    }
}

/// A compiled kernel.
#[derive(Debug)]
pub(crate) struct Pipeline {
    label: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    bindings: usize,
}

/// All compiled training kernels.
#[derive(Debug)]
pub(crate) struct Kernels {
    pipelines: Vec<(K, Pipeline)>,
}

impl Kernels {
    /// Compiles every training kernel.
    ///
    /// # Errors
    ///
    /// [`GpuError::Shader`] when the driver rejects a kernel.
    pub(crate) fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let mut pipelines = Vec::with_capacity(K::ALL.len());
        for k in K::ALL {
            pipelines.push((k, compile(ctx, k)?));
        }
        Ok(Self { pipelines })
    }

    fn get(&self, k: K) -> &Pipeline {
        // Every kernel is compiled in `new`, so the search always succeeds.
        let found = self.pipelines.iter().find(|(kk, _)| *kk == k);
        match found {
            Some((_, p)) => p,
            None => &self.pipelines[0].1,
        }
    }

    /// Binds `buffers` (in binding order) to kernel `k` for a dispatch of `groups` workgroups.
    pub(crate) fn op(
        &self,
        ctx: &GpuContext,
        k: K,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<Op, GpuError> {
        let p = self.get(k);
        let group = bind_group(
            ctx,
            "training kernel",
            p.label,
            &p.layout,
            p.bindings,
            buffers,
        )?;
        Ok(Op { k, group, groups })
    }

    /// An op over `invocations` one-dimensional invocations.
    pub(crate) fn op_1d(
        &self,
        ctx: &GpuContext,
        k: K,
        buffers: &[&wgpu::Buffer],
        invocations: u64,
    ) -> Result<Op, GpuError> {
        let groups = crate::buffers::grid(ctx, invocations, k.workgroup_size());
        self.op(ctx, k, buffers, groups)
    }

    /// Records `ops` into one compute pass, in order (wgpu orders dependent dispatches within a pass).
    pub(crate) fn record(&self, encoder: &mut wgpu::CommandEncoder, ops: &[Op]) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("tickq.train"),
            timestamp_writes: None,
        });
        let mut current: Option<K> = None;
        for op in ops {
            if current != Some(op.k) {
                pass.set_pipeline(&self.get(op.k).pipeline);
                current = Some(op.k);
            }
            pass.set_bind_group(0, &op.group, &[]);
            pass.dispatch_workgroups(op.groups[0], op.groups[1], op.groups[2]);
        }
    }
}

/// One prebuilt dispatch.
#[derive(Debug, Clone)]
pub(crate) struct Op {
    k: K,
    group: wgpu::BindGroup,
    groups: [u32; 3],
}

fn compile(ctx: &GpuContext, k: K) -> Result<Pipeline, GpuError> {
    let label = k.label();
    let bindings: Vec<Binding> = k
        .bindings()
        .into_iter()
        .map(|b| match b {
            B::U => Binding::Uniform,
            B::R(_) => Binding::Read,
            B::W(_) => Binding::ReadWrite,
        })
        .collect();
    let kernel = Kernel::new(ctx, label, &k.wgsl(), "main", &bindings)?;
    Ok(Pipeline {
        label,
        pipeline: kernel.pipeline,
        layout: kernel.layout,
        bindings: bindings.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::context_or_skip;
    use wgpu::naga;

    /// Every assembled module (declarations, shared entry point and body) parses and passes naga's
    /// validation, with no GPU needed.
    #[test]
    fn every_training_module_validates() {
        for k in K::ALL {
            let module = naga::front::wgsl::parse_str(&k.wgsl())
                .unwrap_or_else(|e| panic!("{k:?}: the WGSL does not parse: {e}"));
            let mut validator = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default(),
            );
            if let Err(e) = validator.validate(&module) {
                panic!("{k:?}: the WGSL does not validate: {e:?}");
            }
            let entries: Vec<&str> = module
                .entry_points
                .iter()
                .map(|e| e.name.as_str())
                .collect();
            assert_eq!(entries, ["main"], "{k:?}");
        }
    }

    /// Every training kernel compiles and its binding list matches the WGSL (the CPU comparisons of what the
    /// kernels compute are in tickq-host, which has the reference implementation).
    #[test]
    fn every_training_kernel_compiles() {
        let Some(ctx) = context_or_skip("every_training_kernel_compiles") else {
            return;
        };
        let kernels = Kernels::new(&ctx).unwrap();
        assert_eq!(kernels.pipelines.len(), K::ALL.len());
        let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: 256,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: false,
        });
        for k in K::ALL {
            let n = k.bindings().len();
            let bufs = vec![&buf; n];
            assert!(kernels.op(&ctx, k, &bufs, [1, 1, 1]).is_ok(), "{k:?}");
            assert!(kernels.op(&ctx, k, &bufs[1..], [1, 1, 1]).is_err(), "{k:?}");
        }
    }
}
