//! Where the heavy work runs: `--device auto|cpu|gpu`.
//!
//! [`DeviceChoice::resolve`] turns the flag into a [`ComputeDevice`] and says
//! on stderr, in one line, which device the command uses.
//! `auto` takes the GPU when wgpu finds a hardware adapter (any Vulkan, Metal,
//! DX12 or GL driver) and the CPU otherwise, including when the only adapter
//! renders in software (lavapipe, llvmpipe, WARP), which is slower than the
//! CPU path; `gpu` takes any adapter, software ones included, and without one
//! it is an error, never a silent fallback.

use thiserror::Error;

#[cfg(not(feature = "gpu"))]
mod no_gpu;
#[cfg(not(feature = "gpu"))]
pub use no_gpu::{GpuContext, GpuError, TrainGpuError};
#[cfg(feature = "gpu")]
pub use tickq_gpu::train::TrainGpuError;
#[cfg(feature = "gpu")]
pub use tickq_gpu::{GpuContext, GpuError};

/// The `--device` flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DeviceChoice {
    /// A hardware GPU when one exists, else the CPU.
    #[default]
    Auto,
    /// The CPU, always.
    Cpu,
    /// The GPU (a software adapter too); an error when there is no adapter.
    Gpu,
}

/// A resolved device.
#[derive(Debug, Clone)]
pub enum ComputeDevice {
    /// Run on the CPU.
    Cpu,
    /// Run on this GPU.
    Gpu(GpuContext),
}

impl ComputeDevice {
    /// The GPU context, when the device is a GPU.
    pub fn gpu(&self) -> Option<&GpuContext> {
        match self {
            Self::Cpu => None,
            Self::Gpu(ctx) => Some(ctx),
        }
    }

    /// True for the GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self, Self::Gpu(_))
    }
}

/// `--device gpu` could not be honoured.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// No adapter, or the adapter refused a device.
    #[error("--device gpu: {0}")]
    GpuUnavailable(#[source] GpuError),
    /// This tickq was built without the `gpu` feature.
    #[error(
        "--device gpu: this tickq was built without the `gpu` feature (cargo build --features gpu)"
    )]
    NotBuilt,
}

impl DeviceChoice {
    /// Resolves the choice and prints the one stderr line naming the device.
    ///
    /// # Errors
    ///
    /// [`DeviceError::GpuUnavailable`] for [`DeviceChoice::Gpu`] when no GPU can be opened.
    pub fn resolve(self) -> Result<ComputeDevice, DeviceError> {
        let (device, line) = self.resolve_quiet()?;
        eprintln!("{line}");
        Ok(device)
    }

    /// Resolves the choice without printing; returns the device and the line
    /// [`DeviceChoice::resolve`] would print.
    ///
    /// # Errors
    ///
    /// As [`DeviceChoice::resolve`].
    pub fn resolve_quiet(self) -> Result<(ComputeDevice, String), DeviceError> {
        match self {
            Self::Cpu => Ok((ComputeDevice::Cpu, "device: CPU (--device cpu)".to_string())),
            #[cfg(not(feature = "gpu"))]
            Self::Gpu => Err(DeviceError::NotBuilt),
            #[cfg(not(feature = "gpu"))]
            Self::Auto => Ok((
                ComputeDevice::Cpu,
                "device: CPU (--device auto: this tickq was built without the `gpu` feature)"
                    .to_string(),
            )),
            #[cfg(feature = "gpu")]
            Self::Gpu => {
                let ctx = GpuContext::new().map_err(DeviceError::GpuUnavailable)?;
                let line = gpu_line(&ctx, "--device gpu");
                Ok((ComputeDevice::Gpu(ctx), line))
            }
            #[cfg(feature = "gpu")]
            Self::Auto => match GpuContext::new() {
                Ok(ctx) if ctx.is_software() => Ok((
                    ComputeDevice::Cpu,
                    format!(
                        "device: CPU (--device auto: the only adapter, {} via {}, renders in software \
                         and is slower than the CPU path; --device gpu uses it anyway)",
                        ctx.adapter_name(),
                        ctx.backend_name()
                    ),
                )),
                Ok(ctx) => {
                    let line = gpu_line(&ctx, "--device auto");
                    Ok((ComputeDevice::Gpu(ctx), line))
                }
                Err(e) => Ok((
                    ComputeDevice::Cpu,
                    format!(
                        "device: CPU (--device auto found no usable GPU: {})",
                        first_clause(&e)
                    ),
                )),
            },
        }
    }
}

#[cfg(feature = "gpu")]
fn gpu_line(ctx: &GpuContext, why: &str) -> String {
    let software = if ctx.is_software() {
        ", software rendering: expect CPU speed or slower"
    } else {
        ""
    };
    format!(
        "device: GPU {} via {} ({why}{software})",
        ctx.adapter_name(),
        ctx.backend_name()
    )
}

/// The error up to its first `;`, so the CPU line stays one short line.
#[cfg(feature = "gpu")]
fn first_clause(e: &GpuError) -> String {
    let s = e.to_string();
    s.split(';').next().unwrap_or(&s).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_choice_never_touches_the_gpu() {
        let (device, line) = DeviceChoice::Cpu.resolve_quiet().unwrap();
        assert!(!device.is_gpu());
        assert_eq!(line, "device: CPU (--device cpu)");
    }

    #[test]
    fn auto_reports_one_line() {
        let (device, line) = DeviceChoice::Auto.resolve_quiet().unwrap();
        assert!(!line.contains('\n'));
        match device {
            ComputeDevice::Gpu(ctx) => {
                assert!(!ctx.is_software(), "{line}");
                assert!(line.contains(ctx.adapter_name()), "{line}");
                assert!(line.contains(&ctx.backend_name()), "{line}");
            }
            ComputeDevice::Cpu => assert!(line.starts_with("device: CPU (--device auto"), "{line}"),
        }
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn gpu_choice_agrees_with_auto() {
        let auto = DeviceChoice::Auto.resolve_quiet().unwrap().0.is_gpu();
        match DeviceChoice::Gpu.resolve_quiet() {
            Ok((ComputeDevice::Gpu(ctx), line)) => {
                // auto takes the adapter exactly when it is not a software one.
                assert_eq!(auto, !ctx.is_software(), "{line}");
                assert!(line.contains("--device gpu") && line.contains(ctx.adapter_name()));
            }
            Ok((ComputeDevice::Cpu, line)) => panic!("--device gpu resolved to the CPU: {line}"),
            Err(e) => {
                assert!(!tickq_gpu::testing::in_ci(), "CI needs a GPU adapter: {e}");
                assert!(!auto);
                let msg = e.to_string();
                assert!(
                    msg.contains("--device gpu") && msg.contains("mesa-vulkan-drivers"),
                    "{msg}"
                );
            }
        }
    }

    #[cfg(feature = "gpu")]
    #[test]
    fn no_adapter_error_says_how_to_fix_it() {
        let e = DeviceError::GpuUnavailable(GpuError::NoAdapter {
            tried: "VULKAN | GL".into(),
            detail: String::new(),
        });
        let msg = e.to_string();
        assert!(
            msg.contains("VULKAN | GL") && msg.contains("--device cpu"),
            "{msg}"
        );
    }

    #[cfg(not(feature = "gpu"))]
    #[test]
    fn without_the_gpu_feature_gpu_is_an_error_and_auto_is_the_cpu() {
        let e = DeviceChoice::Gpu.resolve_quiet().unwrap_err();
        assert!(e.to_string().contains("without the `gpu` feature"), "{e}");
        let (device, line) = DeviceChoice::Auto.resolve_quiet().unwrap();
        assert!(!device.is_gpu());
        assert!(line.contains("without the `gpu` feature"), "{line}");
    }
}
