//! GPU memory: a pool of named buffers reused across steps, a meter of the
//! bytes they hold, upload and read-back helpers, and compute kernels built
//! from WGSL source.
//!
//! A step (a training batch, an evaluation batch) asks the pool for the same
//! names every time; the pool hands back the buffer it already has when it is
//! large enough, so a run allocates during its first step and then only
//! writes. Sizes are rounded up to a power of two so that a slightly larger
//! last batch does not force a new allocation either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use bytemuck::Pod;

use crate::context::GpuContext;
use crate::error::GpuError;

/// Smallest buffer the pool allocates, in bytes.
const MIN_BUFFER_BYTES: u64 = 256;

/// Counts the bytes held by every pool of one [`GpuContext`], and the peak.
#[derive(Debug, Default)]
pub(crate) struct MemoryMeter {
    current: AtomicU64,
    peak: AtomicU64,
}

impl MemoryMeter {
    fn add(&self, bytes: u64) {
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, bytes: u64) {
        self.current.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Relaxed)
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

/// What a kernel does with one of its bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `var<uniform>`.
    Uniform,
}

/// Buffers by name, reused while they are large enough.
///
/// Dropping the pool frees its buffers and takes them off the context's meter.
#[derive(Debug)]
pub struct BufferPool {
    ctx: GpuContext,
    slots: HashMap<String, Slot>,
    bytes: u64,
}

#[derive(Debug)]
struct Slot {
    buffer: wgpu::Buffer,
    usage: wgpu::BufferUsages,
}

impl BufferPool {
    /// An empty pool on `ctx`.
    pub fn new(ctx: &GpuContext) -> Self {
        Self {
            ctx: ctx.clone(),
            slots: HashMap::new(),
            bytes: 0,
        }
    }

    /// The context the pool allocates on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Bytes this pool holds on the GPU.
    pub fn bytes_on_gpu(&self) -> u64 {
        self.bytes
    }

    /// Number of buffers the pool holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the pool holds no buffer.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The buffer called `name` with room for at least `bytes` bytes and
    /// exactly `usage`; reused when the pool already has one that fits,
    /// otherwise (re)allocated with the size rounded up to a power of two.
    ///
    /// The returned handle is a cheap clone of the pooled buffer.
    ///
    /// # Errors
    ///
    /// [`GpuError::BufferTooLarge`] when `bytes` exceeds the device's limits.
    pub fn buffer(
        &mut self,
        name: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, GpuError> {
        if let Some(slot) = self.slots.get(name)
            && slot.usage == usage
            && slot.buffer.size() >= bytes
        {
            return Ok(slot.buffer.clone());
        }
        let limits = self.ctx.limits();
        let mut limit = limits.max_buffer_size;
        if usage.contains(wgpu::BufferUsages::STORAGE) {
            limit = limit.min(limits.max_storage_buffer_binding_size);
        }
        if usage.contains(wgpu::BufferUsages::UNIFORM) {
            limit = limit.min(limits.max_uniform_buffer_binding_size);
        }
        if bytes > limit {
            return Err(GpuError::BufferTooLarge {
                buffer: name.to_string(),
                bytes,
                limit,
            });
        }
        // Round up to a power of two (but stay within the limit), aligned to 4 bytes.
        let size = bytes
            .max(MIN_BUFFER_BYTES)
            .checked_next_power_of_two()
            .unwrap_or(limit)
            .min(limit.max(bytes.div_ceil(4) * 4));
        let size = size.div_ceil(4) * 4;
        let buffer = self.ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size,
            usage,
            mapped_at_creation: false,
        });
        self.ctx.meter().add(size);
        self.bytes += size;
        if let Some(old) = self.slots.insert(
            name.to_string(),
            Slot {
                buffer: buffer.clone(),
                usage,
            },
        ) {
            self.forget(&old);
        }
        Ok(buffer)
    }

    fn forget(&mut self, slot: &Slot) {
        let size = slot.buffer.size();
        self.ctx.meter().sub(size);
        self.bytes -= size;
        slot.buffer.destroy();
    }

    /// Frees the buffer called `name`, if any.
    pub fn release(&mut self, name: &str) {
        if let Some(slot) = self.slots.remove(name) {
            self.forget(&slot);
        }
    }

    /// A storage buffer (read-write, copyable both ways) of at least `bytes` bytes.
    ///
    /// # Errors
    ///
    /// As [`BufferPool::buffer`].
    pub fn storage(&mut self, name: &str, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        self.buffer(
            name,
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// A storage buffer called `name` holding `data` (written through the queue,
    /// so it is visible to the next submission).
    ///
    /// # Errors
    ///
    /// As [`BufferPool::buffer`].
    pub fn upload<T: Pod>(&mut self, name: &str, data: &[T]) -> Result<wgpu::Buffer, GpuError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.storage(name, bytes.len() as u64)?;
        write_padded(&self.ctx, &buffer, bytes);
        Ok(buffer)
    }

    /// A uniform buffer called `name` holding `value`.
    ///
    /// # Errors
    ///
    /// As [`BufferPool::buffer`].
    pub fn uniform<T: Pod>(&mut self, name: &str, value: &T) -> Result<wgpu::Buffer, GpuError> {
        let bytes: &[u8] = bytemuck::bytes_of(value);
        let buffer = self.buffer(
            name,
            bytes.len() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        write_padded(&self.ctx, &buffer, bytes);
        Ok(buffer)
    }

    /// Copies the first `count` elements of `src` back to the CPU, waiting for
    /// all submitted work first. The staging buffer is pooled too.
    ///
    /// # Errors
    ///
    /// [`GpuError::BufferMap`] or [`GpuError::Poll`] when wgpu fails.
    pub fn read_back<T: Pod>(
        &mut self,
        src: &wgpu::Buffer,
        count: usize,
    ) -> Result<Vec<T>, GpuError> {
        let bytes = (count * std::mem::size_of::<T>()) as u64;
        let padded = bytes.div_ceil(4) * 4;
        if padded == 0 {
            return Ok(Vec::new());
        }
        let staging = self.buffer(
            "tickq.staging.read",
            padded,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut encoder =
            self.ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("tickq.read_back"),
                });
        encoder.copy_buffer_to_buffer(src, 0, &staging, 0, padded);
        self.ctx.queue().submit([encoder.finish()]);
        let label = || format!("{src:?}");
        let slice = staging.slice(0..padded);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver lives until after the poll below; a failed send can only
            // mean the reader already gave up, so there is nothing left to tell.
            let _ = tx.send(r);
        });
        self.ctx.wait()?;
        rx.recv()
            .map_err(|e| GpuError::BufferMap {
                buffer: label(),
                message: e.to_string(),
            })?
            .map_err(|e| GpuError::BufferMap {
                buffer: label(),
                message: e.to_string(),
            })?;
        let out = {
            let view = slice.get_mapped_range().map_err(|e| GpuError::BufferMap {
                buffer: label(),
                message: e.to_string(),
            })?;
            let raw = view.get(..bytes as usize).unwrap_or(&[]);
            // `pod_collect_to_vec` copies into a fresh, properly aligned vector.
            bytemuck::pod_collect_to_vec::<u8, T>(raw)
        };
        staging.unmap();
        Ok(out)
    }
}

impl Drop for BufferPool {
    fn drop(&mut self) {
        self.ctx.meter().sub(self.bytes);
    }
}

/// Writes `bytes` at the start of `buffer`, padding to the 4-byte copy alignment.
fn write_padded(ctx: &GpuContext, buffer: &wgpu::Buffer, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if bytes.len().is_multiple_of(4) {
        ctx.queue().write_buffer(buffer, 0, bytes);
    } else {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len().div_ceil(4) * 4, 0);
        ctx.queue().write_buffer(buffer, 0, &padded);
    }
}

/// A compute pipeline built from WGSL source, with an explicit binding layout
/// (group 0, bindings 0..n in the order given).
#[derive(Debug, Clone)]
pub struct Kernel {
    label: String,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
    bindings: usize,
}

impl Kernel {
    /// Compiles `wgsl` and builds the pipeline for `entry`.
    ///
    /// # Errors
    ///
    /// [`GpuError::Shader`] with naga's message when the source does not
    /// compile or the pipeline does not validate against `bindings`.
    pub fn new(
        ctx: &GpuContext,
        label: &str,
        wgsl: &str,
        entry: &str,
        bindings: &[Binding],
    ) -> Result<Self, GpuError> {
        let device = ctx.device();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(wgsl.into()),
        });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b {
                        Binding::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Binding::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                        Binding::Uniform => wgpu::BufferBindingType::Uniform,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Shader {
                kernel: label.to_string(),
                message: e.to_string(),
            });
        }
        Ok(Self {
            label: label.to_string(),
            pipeline,
            layout,
            bindings: bindings.len(),
        })
    }

    /// The kernel's label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Records one dispatch of `workgroups` with `buffers` bound in order.
    ///
    /// # Errors
    ///
    /// [`GpuError::Shape`] when the number of buffers differs from the
    /// kernel's bindings.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        let group = bind_group(
            ctx,
            "kernel",
            &self.label,
            &self.layout,
            self.bindings,
            buffers,
        )?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(&self.label),
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        Ok(())
    }
}

/// A bind group of `buffers`, bound in order to a kernel `layout` of `bindings` buffers.
///
/// # Errors
///
/// [`GpuError::Shape`] naming the `kind` of kernel and its `label` when the number of buffers differs
/// from `bindings`.
pub(crate) fn bind_group(
    ctx: &GpuContext,
    kind: &str,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    bindings: usize,
    buffers: &[&wgpu::Buffer],
) -> Result<wgpu::BindGroup, GpuError> {
    if buffers.len() != bindings {
        return Err(GpuError::Shape(format!(
            "{kind} '{label}' takes {bindings} buffers, got {}",
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
    Ok(ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    }))
}

/// Workgroup counts for `invocations` threads in workgroups of `workgroup_size`,
/// spread over x and y when x alone would exceed the per-dimension limit.
///
/// Shaders recover the linear index as
/// `(wid.y * nwg.x + wid.x) * WORKGROUP_SIZE + lid.x` (with `nwg` the
/// `num_workgroups` builtin) and return when it is past the end.
pub fn grid(ctx: &GpuContext, invocations: u64, workgroup_size: u32) -> [u32; 3] {
    let groups = invocations
        .div_ceil(u64::from(workgroup_size.max(1)))
        .max(1);
    let max = u64::from(ctx.limits().max_compute_workgroups_per_dimension.max(1));
    if groups <= max {
        [groups as u32, 1, 1]
    } else {
        let y = groups.div_ceil(max);
        let x = groups.div_ceil(y);
        [x as u32, y as u32, 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::context_or_skip;

    const ADD_ONE: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<i32>;
@group(0) @binding(1) var<storage, read_write> dst: array<i32>;
@group(0) @binding(2) var<uniform> n: vec4<u32>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (i >= n.x) { return; }
    dst[i] = src[i] + 1;
}
"#;

    #[test]
    fn kernel_round_trip_and_pool_reuse() {
        let Some(ctx) = context_or_skip("kernel_round_trip_and_pool_reuse") else {
            return;
        };
        let kernel = Kernel::new(
            &ctx,
            "add_one",
            ADD_ONE,
            "main",
            &[Binding::Read, Binding::ReadWrite, Binding::Uniform],
        )
        .unwrap();
        let mut pool = BufferPool::new(&ctx);
        let before = ctx.bytes_on_gpu();
        for n in [1000_u32, 700, 1000] {
            let data: Vec<i32> = (0..n as i32).map(|v| v * 3 - 500).collect();
            let src = pool.upload("src", &data).unwrap();
            let dst = pool.storage("dst", u64::from(n) * 4).unwrap();
            let params = pool.uniform("n", &[n, 0, 0, 0]).unwrap();
            let mut enc = ctx.device().create_command_encoder(&Default::default());
            kernel
                .dispatch(
                    &ctx,
                    &mut enc,
                    &[&src, &dst, &params],
                    grid(&ctx, n.into(), 64),
                )
                .unwrap();
            ctx.queue().submit([enc.finish()]);
            let out: Vec<i32> = pool.read_back(&dst, n as usize).unwrap();
            let want: Vec<i32> = data.iter().map(|v| v + 1).collect();
            assert_eq!(out, want);
        }
        // src, dst, the uniform and the staging buffer: allocated once, then reused.
        assert_eq!(pool.len(), 4);
        let held = pool.bytes_on_gpu();
        assert_eq!(held, 4096 + 4096 + 256 + 4096);
        assert!(ctx.bytes_on_gpu() >= before + held);
        assert!(ctx.peak_bytes_on_gpu() >= ctx.bytes_on_gpu());
        drop(pool);
        assert!(ctx.bytes_on_gpu() <= before.max(ctx.bytes_on_gpu()));
    }

    #[test]
    fn bad_shader_is_an_error() {
        let Some(ctx) = context_or_skip("bad_shader_is_an_error") else {
            return;
        };
        let err = Kernel::new(&ctx, "broken", "fn main( {", "main", &[]).unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
    }

    #[test]
    fn too_large_buffer_is_an_error() {
        let Some(ctx) = context_or_skip("too_large_buffer_is_an_error") else {
            return;
        };
        let mut pool = BufferPool::new(&ctx);
        let err = pool.storage("huge", u64::MAX / 2).unwrap_err();
        assert!(matches!(err, GpuError::BufferTooLarge { .. }), "{err}");
        assert_eq!(pool.bytes_on_gpu(), 0);
    }

    #[test]
    fn uncaptured_wgpu_errors_become_gpu_errors_not_panics() {
        // Held for the whole test: on GL it is this test's turn on the device (see `testing`).
        let Some(_turn) = context_or_skip("uncaptured_wgpu_errors_become_gpu_errors_not_panics")
        else {
            return;
        };
        // A context of its own: the error must not reach tests sharing the common one.
        let ctx = GpuContext::new().unwrap();
        let kernel = Kernel::new(
            &ctx,
            "add_one",
            ADD_ONE,
            "main",
            &[Binding::Read, Binding::ReadWrite, Binding::Uniform],
        )
        .unwrap();
        let mut pool = BufferPool::new(&ctx);
        let src = pool.upload("src", &[1i32, 2, 3]).unwrap();
        let dst = pool.storage("dst", 12).unwrap();
        let mut enc = ctx.device().create_command_encoder(&Default::default());
        // A storage buffer where the kernel wants a uniform one: wgpu rejects the bind group.
        kernel
            .dispatch(&ctx, &mut enc, &[&src, &dst, &src], [1, 1, 1])
            .unwrap();
        ctx.queue().submit([enc.finish()]);
        let err = ctx.wait().unwrap_err();
        assert!(matches!(err, GpuError::Device(_)), "{err}");
        // Reported once; the context stays usable.
        ctx.wait().unwrap();
    }

    #[test]
    fn describe_names_adapter_and_backend() {
        let Some(ctx) = context_or_skip("describe_names_adapter_and_backend") else {
            return;
        };
        let line = ctx.describe();
        assert!(line.contains(ctx.adapter_name()), "{line}");
        assert!(line.contains(&ctx.backend_name()), "{line}");
        assert!(!line.contains('\n'));
    }
}
