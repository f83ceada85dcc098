//! The training kernels: WGSL sources, their bind-group layouts and prebuilt dispatches.
//!
//! Unlike [`crate::Kernel`], which binds its buffers anew on every dispatch, a training step replays the same
//! dispatches over the same buffers thousands of times, so [`Op`] keeps its bind group and grid.

use crate::buffers::{Binding, Kernel};
use crate::context::GpuContext;
use crate::error::GpuError;

/// How a kernel sees one of its bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum B {
    /// A uniform block.
    U,
    /// A read-only storage buffer.
    R,
    /// A read-write storage buffer.
    W,
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

    /// The kernel's label, WGSL source and bindings in order.
    pub(super) fn source(self) -> (&'static str, &'static str, &'static [B]) {
        use B::{R, U, W};
        match self {
            K::Matmul => ("matmul", include_str!("wgsl/matmul.wgsl"), &[U, R, R, R, W]),
            K::ColSum => ("colsum", include_str!("wgsl/colsum.wgsl"), &[U, R, W]),
            K::ActFwd => ("act_fwd", include_str!("wgsl/act_fwd.wgsl"), &[U, R, W]),
            K::ActBwd => ("act_bwd", include_str!("wgsl/act_bwd.wgsl"), &[U, R, R, W]),
            K::Im2Col => ("im2col", include_str!("wgsl/im2col.wgsl"), &[U, R, W]),
            K::Col2Im => ("col2im", include_str!("wgsl/col2im.wgsl"), &[U, R, W]),
            K::ConvOut => (
                "conv_out",
                include_str!("wgsl/conv_out.wgsl"),
                &[U, R, R, W],
            ),
            K::ConvGrad => ("conv_grad", include_str!("wgsl/conv_grad.wgsl"), &[U, R, W]),
            K::PoolFwd => (
                "pool_fwd",
                include_str!("wgsl/pool_fwd.wgsl"),
                &[U, R, W, W],
            ),
            K::PoolBwd => (
                "pool_bwd",
                include_str!("wgsl/pool_bwd.wgsl"),
                &[U, R, R, W],
            ),
            K::GatherX => (
                "gather_x",
                include_str!("wgsl/gather_x.wgsl"),
                &[U, R, R, R, W],
            ),
            K::GatherY => (
                "gather_y",
                include_str!("wgsl/gather_y.wgsl"),
                &[U, R, R, R, R, W, W],
            ),
            K::Advance => ("advance", include_str!("wgsl/advance.wgsl"), &[W]),
            K::Loss => (
                "loss",
                include_str!("wgsl/loss.wgsl"),
                &[U, R, R, R, R, R, W, W],
            ),
            K::Optim => (
                "optim",
                include_str!("wgsl/optim.wgsl"),
                &[U, W, R, W, W, R, R, R],
            ),
        }
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
        if buffers.len() != p.bindings {
            return Err(GpuError::Shape(format!(
                "training kernel '{}' takes {} buffers, got {}",
                p.label,
                p.bindings,
                buffers.len()
            )));
        }
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let group = ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(p.label),
            layout: &p.layout,
            entries: &entries,
        });
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
    let (label, wgsl, bindings) = k.source();
    let bindings: Vec<Binding> = bindings
        .iter()
        .map(|b| match b {
            B::U => Binding::Uniform,
            B::R => Binding::Read,
            B::W => Binding::ReadWrite,
        })
        .collect();
    let kernel = Kernel::new(ctx, label, wgsl, "main", &bindings)?;
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
            let n = k.source().2.len();
            let bufs = vec![&buf; n];
            assert!(kernels.op(&ctx, k, &bufs, [1, 1, 1]).is_ok(), "{k:?}");
            assert!(kernels.op(&ctx, k, &bufs[1..], [1, 1, 1]).is_err(), "{k:?}");
        }
    }
}
