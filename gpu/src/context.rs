//! Device setup: one adapter, one device, one queue, and what they can do.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use crate::buffers::MemoryMeter;
use crate::error::GpuError;

/// An open GPU: the adapter wgpu picked, its device and queue, and a meter of
/// the bytes the tickq buffers hold on it.
///
/// Cloning is cheap: the clone shares the device, queue and meter.
#[derive(Debug, Clone)]
pub struct GpuContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    meter: MemoryMeter,
    /// Errors wgpu reported outside an error scope (out of memory, a lost device), oldest first.
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuContext {
    /// Opens the best adapter (high-performance preference) and a device on it,
    /// blocking until both are ready.
    ///
    /// The backends are wgpu's defaults (Vulkan, Metal, DX12, GL), narrowed by
    /// `WGPU_BACKEND` when that is set. The device gets the adapter's own
    /// limits, so large batches fit where the hardware allows them.
    ///
    /// # Errors
    ///
    /// [`GpuError::NoAdapter`] when no adapter exists (the message says which
    /// backends were tried and how to install a driver), and
    /// [`GpuError::DeviceRequest`] when the adapter refuses a device.
    ///
    /// Contexts are opened one at a time process-wide: wgpu's GL backend (EGL, which wgpu falls back to where
    /// no Vulkan driver is installed) shares one lock per display and panics with "Could not lock adapter
    /// context" when a thread waits for it longer than a few seconds, which parallel openings on a loaded
    /// software renderer did.
    pub fn new() -> Result<Self, GpuError> {
        static OPENING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
        pollster::block_on(Self::new_async())
    }

    async fn new_async() -> Result<Self, GpuError> {
        let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        let tried = format!("{:?}", desc.backends);
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        let adapter =
            instance
                .request_adapter(&options)
                .await
                .map_err(|e| GpuError::NoAdapter {
                    tried,
                    detail: format!(": {e}"),
                })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tickq"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::DeviceRequest {
                adapter: info.name.clone(),
                message: e.to_string(),
            })?;
        // wgpu's default handler panics on an uncaptured error; keep it instead, so that the next wait turns it
        // into a GpuError.
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut list) = sink.lock() {
                list.push(e.to_string());
            }
        }));
        Ok(Self {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                limits,
                meter: MemoryMeter::default(),
                errors,
            }),
        })
    }

    /// The wgpu device.
    #[inline]
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    #[inline]
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// What wgpu reports about the adapter (name, backend, driver, type).
    #[inline]
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The device's limits (the adapter's own).
    #[inline]
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.inner.info.name
    }

    /// True when the device runs on wgpu's GL backend, whose context admits one thread at a time: a thread that
    /// waits for it longer than wgpu's timeout (6 s with EGL) panics, so code that shares a GL context between
    /// threads must take turns (the test helper [`crate::testing::context_or_skip`] does).
    pub fn is_gl(&self) -> bool {
        self.inner.info.backend == wgpu::Backend::Gl
    }

    /// The backend in lower case, e.g. `vulkan`.
    pub fn backend_name(&self) -> String {
        format!("{:?}", self.inner.info.backend).to_lowercase()
    }

    /// True for a CPU-emulated adapter (lavapipe, llvmpipe, WARP): it works
    /// and is bit-exact, but it is no faster than the CPU path.
    pub fn is_software(&self) -> bool {
        self.inner.info.device_type == wgpu::DeviceType::Cpu
    }

    /// One line naming the adapter, backend, device type, driver and the
    /// limits the tickq kernels depend on.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        let l = &self.inner.limits;
        let mut s = format!("{} ({}, {:?}", i.name, self.backend_name(), i.device_type);
        if !i.driver.is_empty() {
            let _ = write!(s, ", driver {}", i.driver);
            if !i.driver_info.is_empty() {
                let _ = write!(s, " {}", i.driver_info);
            }
        }
        let _ = write!(
            s,
            "); limits: storage binding {} MiB, buffer {} MiB, {} storage buffers/stage, \
             workgroup {} invocations, {} workgroups/dimension",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_storage_buffers_per_shader_stage,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroups_per_dimension
        );
        s
    }

    /// Bytes the tickq buffer pools hold on the GPU now.
    pub fn bytes_on_gpu(&self) -> u64 {
        self.inner.meter.current()
    }

    /// The most bytes the tickq buffer pools held at once since the context opened.
    pub fn peak_bytes_on_gpu(&self) -> u64 {
        self.inner.meter.peak()
    }

    pub(crate) fn meter(&self) -> &MemoryMeter {
        &self.inner.meter
    }

    /// Waits until the GPU has finished all submitted work.
    ///
    /// # Errors
    ///
    /// [`GpuError::Poll`] when the device is lost, and [`GpuError::Device`] when wgpu reported an error
    /// meanwhile (see [`GpuContext::check_errors`]).
    pub fn wait(&self) -> Result<(), GpuError> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Poll(e.to_string()))?;
        self.check_errors()
    }

    /// Returns (and clears) the errors wgpu reported outside an error scope since the last check, such as an
    /// allocation the device could not satisfy.
    ///
    /// # Errors
    ///
    /// [`GpuError::Device`] with every message, oldest first.
    pub fn check_errors(&self) -> Result<(), GpuError> {
        let list = match self.inner.errors.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        if list.is_empty() {
            Ok(())
        } else {
            Err(GpuError::Device(list.join("; ")))
        }
    }
}
