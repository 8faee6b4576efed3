//! NVIDIA GPUs (the `cuda` feature): arrays in device memory and a
//! [`Backend`] whose kernels are CUDA C generated from the op vocabulary
//! ([`codegen`]), compiled by NVRTC when first launched and cached per
//! device, with matrix products through cuBLAS.
//!
//! Everything of CUDA is loaded at run time (cudarc's dynamic loading), so
//! a build with the feature runs on a machine without a GPU: [`available`]
//! says so, and putting an array on a GPU there panics naming the reason.
//!
//! Each device has one stream: every kernel, copy and free is ordered on
//! it, which is what makes the caching allocator ([`Gpu::alloc`]) safe — a
//! block given back is reused only by work queued after the work that read
//! it. Reading an array's elements on the host ([`Array::buffer`]) copies
//! them once and keeps the copy, as JAX's arrays do.
//!
//! Convolutions are matrix products of columns a generated kernel gathers
//! (`conv.rs`); pooling's window search and sorting (runs of up to
//! `codegen::SORT_MAX`) are generated kernels; so are softmax and
//! standardisation (layer norm) over rows and their tangent maps, a block
//! per row (`norm.rs`). What runs on the host:
//! longer sorts and integer matrix products are computed by the CPU
//! kernels on host copies and the result put back on the device (as is
//! linear algebra) — correct, not fast.

mod backend;
pub mod codegen;
mod conv;
mod dims;
#[cfg(test)]
mod emulate;
mod norm;
mod prelude;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr};

pub use self::backend::Cuda;
use self::backend::{grid, Launch};
use self::codegen::{Kernel, KernelKey};
use super::backend::Device;
use super::{Array, Buffer, DType, Storage};

/// Why a GPU could not be used or an operation on one failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaError {
    /// A CUDA library (`libcuda`, `libnvrtc`, `libcublas`) could not be opened.
    MissingLibrary(String),
    /// No device of this ordinal (the count is given).
    NoDevice {
        /// The ordinal asked for.
        ordinal: usize,
        /// How many devices the driver reports.
        count: usize,
    },
    /// The driver refused a call; the call and CUDA's message.
    Driver(String),
    /// NVRTC rejected a generated kernel: its name and the compiler's log.
    Compile {
        /// The kernel's entry point.
        kernel: String,
        /// What NVRTC said.
        log: String,
    },
    /// cuBLAS refused a call.
    Blas(String),
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CudaError::MissingLibrary(lib) => write!(
                f,
                "the CUDA library {lib} could not be loaded (no NVIDIA driver or CUDA runtime on this machine, \
                 or not on LD_LIBRARY_PATH)"
            ),
            CudaError::NoDevice { ordinal, count } => {
                write!(f, "there is no GPU cuda:{ordinal}: the driver reports {count} device(s)")
            }
            CudaError::Driver(m) => write!(f, "CUDA driver error: {m}"),
            CudaError::Compile { kernel, log } => write!(f, "NVRTC could not compile kernel {kernel}:\n{log}"),
            CudaError::Blas(m) => write!(f, "cuBLAS error: {m}"),
        }
    }
}

impl std::error::Error for CudaError {}

/// Whether the library `name` (cudarc's name: `cuda`, `nvrtc`, `cublas`)
/// can be opened. cudarc panics on its first call into a missing library,
/// so this is asked first.
fn library_loads(name: &str) -> bool {
    cudarc::get_lib_name_candidates(name).iter().any(|c| {
        // SAFETY: opening a CUDA library runs only its initialisers, which are
        // the vendor's; nothing of it is called here.
        unsafe { libloading::Library::new(c) }.is_ok()
    })
}

/// NVRTC alone, for compiling kernels on a machine without a GPU.
pub fn nvrtc_available() -> Result<(), CudaError> {
    if library_loads("nvrtc") {
        Ok(())
    } else {
        Err(CudaError::MissingLibrary("libnvrtc".into()))
    }
}

/// How many GPUs can be used, or why none can.
pub fn device_count() -> Result<usize, CudaError> {
    static COUNT: OnceLock<Result<usize, CudaError>> = OnceLock::new();
    COUNT
        .get_or_init(|| {
            for (lib, file) in [("cuda", "libcuda"), ("nvrtc", "libnvrtc"), ("cublas", "libcublas")] {
                if !library_loads(lib) {
                    return Err(CudaError::MissingLibrary(file.into()));
                }
            }
            CudaContext::device_count().map(|n| n.max(0) as usize).map_err(|e| CudaError::Driver(format!("{e:?}")))
        })
        .clone()
}

/// Whether at least one GPU can be used.
pub fn available() -> bool {
    matches!(device_count(), Ok(n) if n > 0)
}

/// Waits until every operation queued on GPU `ordinal` has finished (for
/// timing: operations return as soon as they are queued).
pub fn synchronize(ordinal: usize) -> Result<(), CudaError> {
    gpu(ordinal)?.stream.synchronize().map_err(|e| CudaError::Driver(format!("synchronizing: {e:?}")))
}

/// The name the driver gives GPU `ordinal` ("NVIDIA H100 80GB HBM3", …).
pub fn device_name(ordinal: usize) -> Result<String, CudaError> {
    gpu(ordinal)?.stream.context().name().map_err(|e| CudaError::Driver(format!("reading the name: {e:?}")))
}

/// The state of one GPU: its context and stream, cuBLAS, the compiled
/// kernels and the blocks given back for reuse.
pub struct Gpu {
    ordinal: usize,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    /// The NVRTC target, `sm_XY` from the device's compute capability.
    arch: &'static str,
    kernels: Mutex<HashMap<KernelKey, CudaFunction>>,
    fused: Mutex<HashMap<String, CudaFunction>>,
    free: Mutex<HashMap<usize, Vec<CudaSlice<u8>>>>,
}

/// The GPU `ordinal`, opened at its first use (a failure to open it is kept too).
pub fn gpu(ordinal: usize) -> Result<Arc<Gpu>, CudaError> {
    const SLOTS: usize = 64;
    static GPUS: [OnceLock<Result<Arc<Gpu>, CudaError>>; SLOTS] = [const { OnceLock::new() }; SLOTS];
    let Some(slot) = GPUS.get(ordinal) else {
        return Err(CudaError::NoDevice { ordinal, count: device_count()? });
    };
    slot.get_or_init(|| open(ordinal)).clone()
}

fn open(ordinal: usize) -> Result<Arc<Gpu>, CudaError> {
    let count = device_count()?;
    if ordinal >= count {
        return Err(CudaError::NoDevice { ordinal, count });
    }
    let driver = |what: &str, e: cudarc::driver::DriverError| CudaError::Driver(format!("{what}: {e:?}"));
    let ctx = CudaContext::new(ordinal).map_err(|e| driver("creating a context", e))?;
    // One stream orders everything, so cudarc's per-buffer events are not needed.
    // SAFETY: no buffer of this context exists yet.
    unsafe { ctx.disable_event_tracking() };
    let (major, minor) = ctx.compute_capability().map_err(|e| driver("reading the compute capability", e))?;
    let arch: &'static str = Box::leak(format!("sm_{major}{minor}").into_boxed_str());
    let stream = ctx.default_stream();
    let blas = CudaBlas::new(stream.clone()).map_err(|e| CudaError::Blas(format!("{e:?}")))?;
    Ok(Arc::new(Gpu {
        ordinal,
        stream,
        blas,
        arch,
        kernels: Mutex::new(HashMap::new()),
        fused: Mutex::new(HashMap::new()),
        free: Mutex::new(HashMap::new()),
    }))
}

/// The GPU `ordinal`, or a panic naming the operation and the reason.
#[track_caller]
fn gpu_or_panic(ordinal: usize, op: &str) -> Arc<Gpu> {
    match gpu(ordinal) {
        Ok(g) => g,
        Err(e) => panic!("{op}: cannot use cuda:{ordinal}: {e}; check ferrax::cuda::available() first"),
    }
}

/// Compiles `kernel` with NVRTC to machine code (a CUBIN) for `arch`, a
/// real architecture such as `sm_90`.
///
/// Machine code rather than PTX: a driver refuses PTX from an NVRTC newer
/// than itself, while machine code loads on any driver of the same major
/// CUDA version, whatever NVRTC the machine has.
pub fn compile(kernel: &Kernel, arch: &str) -> Result<Vec<u8>, CudaError> {
    use cudarc::nvrtc::{result, sys};
    nvrtc_available()?;
    let fail = |what: &str, e: result::NvrtcError| CudaError::Compile {
        kernel: kernel.name.clone(),
        log: format!("{what}: {e:?}"),
    };
    let src = std::ffi::CString::new(kernel.source.as_str()).expect("generated sources hold no NUL");
    let name = std::ffi::CString::new(format!("{}.cu", kernel.name)).expect("kernel names hold no NUL");
    let prog = result::create_program(&src, Some(&name)).map_err(|e| fail("creating the program", e))?;
    // No contraction of a product and a sum into one fused multiply-add:
    // the CPU rounds both, and a fused group must give eager's bits.
    let options = [format!("--gpu-architecture={arch}"), "--std=c++17".to_string(), "--fmad=false".to_string()];
    // SAFETY: `prog` is live until the destroy below, `src` and `name` outlive it,
    // and every buffer passed to NVRTC has the size NVRTC reported.
    let out = unsafe {
        match result::compile_program(prog, &options) {
            Err(e) => {
                let log = result::get_program_log(prog)
                    .map(|l| std::ffi::CStr::from_ptr(l.as_ptr()).to_string_lossy().into_owned());
                Err(CudaError::Compile { kernel: kernel.name.clone(), log: log.unwrap_or_else(|_| format!("{e:?}")) })
            }
            Ok(()) => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(prog, &mut size).result().map_err(|e| fail("sizing the CUBIN", e))?;
                let mut cubin = vec![0u8; size];
                sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| fail("reading the CUBIN", e))?;
                Ok(cubin)
            }
        }
    };
    // SAFETY: created above and not destroyed before.
    let _ = unsafe { result::destroy_program(prog) };
    out
}

/// Sizes of the blocks the allocator hands out: at least 512 bytes, then
/// four sizes per power of two, so a block given back fits requests up to
/// a quarter smaller.
fn size_class(bytes: usize) -> usize {
    let b = bytes.max(512);
    let top = usize::BITS - 1 - b.leading_zeros();
    let quarter = 1usize << (top - 2);
    b.div_ceil(quarter) * quarter
}

impl Gpu {
    /// The device this is.
    pub fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    /// Makes this GPU's context current on the calling thread, which calls
    /// into the driver outside cudarc's safe API (copies, memset, cuBLAS) need.
    fn bind(&self, op: &str) {
        self.stream
            .context()
            .bind_to_thread()
            .unwrap_or_else(|e| panic!("{op}: cuda:{} cannot be made current on this thread: {e:?}", self.ordinal));
    }

    /// A block of at least `bytes` bytes: one given back earlier, or a new
    /// one (after giving every cached block back to CUDA when memory runs out).
    fn alloc(&self, bytes: usize) -> CudaSlice<u8> {
        let class = size_class(bytes);
        if let Some(b) = self.free.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&class).and_then(Vec::pop) {
            return b;
        }
        // SAFETY: the block is written by a kernel or a copy before it is read.
        match unsafe { self.stream.alloc::<u8>(class) } {
            Ok(b) => b,
            Err(_) => {
                self.free.lock().unwrap_or_else(|e| e.into_inner()).clear();
                let _ = self.stream.synchronize();
                // SAFETY: as above.
                unsafe { self.stream.alloc::<u8>(class) }.unwrap_or_else(|e| {
                    panic!("cuda:{}: out of device memory allocating {bytes} bytes ({e:?})", self.ordinal)
                })
            }
        }
    }

    fn give_back(&self, block: CudaSlice<u8>) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).entry(block.len()).or_default().push(block);
    }

    /// An uninitialised array of `dtype` and `shape` on this GPU.
    fn empty(self: &Arc<Self>, dtype: DType, shape: &[usize]) -> Array {
        let len: usize = shape.iter().product();
        let block = self.alloc(len * dtype.size_of());
        Array::from_storage(shape, dtype, Storage::Cuda(DeviceBuffer::new(self.clone(), block, len, dtype)))
    }

    /// Zeros of `dtype` and `shape` on this GPU.
    fn zeros(self: &Arc<Self>, dtype: DType, shape: &[usize]) -> Array {
        let a = self.empty(dtype, shape);
        let d = device_buffer(&a);
        let (ptr, bytes) = (d.ptr(), d.len * dtype.size_of());
        if bytes > 0 {
            self.bind("zeros");
            // SAFETY: the block holds at least `bytes` bytes.
            unsafe { cudarc::driver::result::memset_d8_async(ptr, 0, bytes, self.stream.cu_stream()) }
                .unwrap_or_else(|e| panic!("cuda:{}: zeroing {bytes} bytes failed: {e:?}", self.ordinal));
        }
        a
    }

    /// The compiled kernel of `key`, generated and compiled at its first use.
    fn function(&self, key: KernelKey) -> CudaFunction {
        if let Some(f) = self.kernels.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return f.clone();
        }
        // Compiled outside the lock: another thread may compile it too, harmlessly.
        let f = self.load(&key.kernel());
        self.kernels.lock().unwrap_or_else(|e| e.into_inner()).insert(key, f.clone());
        f
    }

    /// The compiled kernel of a fused program, cached by its name (a hash of its source).
    fn fused_function(&self, kernel: &Kernel) -> CudaFunction {
        if let Some(f) = self.fused.lock().unwrap_or_else(|e| e.into_inner()).get(&kernel.name) {
            return f.clone();
        }
        let f = self.load(kernel);
        self.fused.lock().unwrap_or_else(|e| e.into_inner()).insert(kernel.name.clone(), f.clone());
        f
    }

    fn load(&self, kernel: &Kernel) -> CudaFunction {
        let cubin = compile(kernel, self.arch).unwrap_or_else(|e| panic!("cuda:{}: {e}", self.ordinal));
        let module = self
            .stream
            .context()
            .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
            .unwrap_or_else(|e| panic!("cuda:{}: loading kernel {}: {e:?}", self.ordinal, kernel.name));
        module
            .load_function(&kernel.name)
            .unwrap_or_else(|e| panic!("cuda:{}: finding kernel {}: {e:?}", self.ordinal, kernel.name))
    }

    /// The array on this GPU: itself when it is here, a copy when it is on
    /// the host (host arrays follow the device of a computation's other
    /// inputs), a panic when it is on another GPU.
    #[track_caller]
    fn here(self: &Arc<Self>, x: &Array, op: &str) -> Array {
        match x.device() {
            Device::Cuda(n) if n == self.ordinal => x.clone(),
            Device::Cpu => upload(self, x),
            other => panic!(
                "{op}: an operation mixes arrays on cuda:{} and on {other}; move them to one device first with device_put",
                self.ordinal
            ),
        }
    }
}

/// An array's elements in one GPU's memory.
pub struct DeviceBuffer {
    gpu: Arc<Gpu>,
    block: Option<CudaSlice<u8>>,
    len: usize,
    dtype: DType,
    /// The elements copied to the host, at the first read there.
    host: OnceLock<Buffer>,
}

impl DeviceBuffer {
    fn new(gpu: Arc<Gpu>, block: CudaSlice<u8>, len: usize, dtype: DType) -> DeviceBuffer {
        DeviceBuffer { gpu, block: Some(block), len, dtype, host: OnceLock::new() }
    }

    /// The GPU holding the elements.
    pub fn device(&self) -> Device {
        self.gpu.device()
    }

    /// The device address of the first element.
    fn ptr(&self) -> u64 {
        let block = self.block.as_ref().expect("a live buffer has its block");
        block.device_ptr(&self.gpu.stream).0
    }

    /// The elements, copied to the host at the first call.
    pub fn host(&self) -> &Buffer {
        self.host.get_or_init(|| download(self))
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.block.take() {
            self.gpu.give_back(b);
        }
    }
}

impl fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceBuffer({} × {} on cuda:{})", self.len, self.dtype, self.gpu.ordinal)
    }
}

fn device_buffer(a: &Array) -> &DeviceBuffer {
    match a.storage() {
        Storage::Cuda(d) => d,
        Storage::Cpu(_) => unreachable!("the CUDA backend moves its operands to the device first"),
    }
}

/// The raw bytes of a host buffer.
fn bytes_of(buf: &Buffer) -> &[u8] {
    // SAFETY: every element type is plain data without padding; the slice
    // covers exactly the vector's elements.
    super::with_buffer!(buf, v => unsafe {
        std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v.as_slice()))
    })
}

/// `x` (on the host) copied to `gpu`.
fn upload(gpu: &Arc<Gpu>, x: &Array) -> Array {
    let out = gpu.empty(x.dtype(), x.shape());
    let bytes = bytes_of(x.buffer());
    if x.size() == 1 {
        let mut v = [0u8; 8];
        v[..bytes.len()].copy_from_slice(bytes);
        let (v, n, p) = (u64::from_le_bytes(v), 1i64, device_buffer(&out).ptr());
        let key = KernelKey::Fill(bytes.len());
        let f = gpu.function(key);
        Launch::new(gpu, &f, &key).arg(&p).arg(&v).arg(&n).run(grid(1));
        return out;
    }
    if !bytes.is_empty() {
        let d = device_buffer(&out);
        gpu.bind("device_put");
        // SAFETY: the block holds at least `bytes.len()` bytes; the copy from
        // pageable memory is staged before the call returns.
        unsafe { cudarc::driver::result::memcpy_htod_async(d.ptr(), bytes, gpu.stream.cu_stream()) }.unwrap_or_else(
            |e| panic!("device_put: copying {} bytes to cuda:{} failed: {e:?}", bytes.len(), gpu.ordinal),
        );
    }
    out
}

/// The elements of `d` copied to the host.
fn download(d: &DeviceBuffer) -> Buffer {
    let mut host = Array::zeros(&[d.len], d.dtype);
    let buf = match host.storage_mut() {
        Some(Storage::Cpu(b)) => b,
        _ => unreachable!("a fresh host array is unshared"),
    };
    let len = bytes_of(buf).len();
    if len > 0 {
        let dst = super::with_buffer!(buf, v => v.as_mut_ptr().cast::<u8>());
        // SAFETY: `dst` addresses `len` writable bytes of `buf`, which lives to the end of this function.
        let dst = unsafe { std::slice::from_raw_parts_mut(dst, len) };
        let stream = d.gpu.stream.cu_stream();
        d.gpu.bind("reading an array on the host");
        // SAFETY: the device block holds `len` bytes; the stream is synchronised before `dst` is read.
        unsafe { cudarc::driver::result::memcpy_dtoh_async(dst, d.ptr(), stream) }
            .and_then(|()| d.gpu.stream.synchronize())
            .unwrap_or_else(|e| panic!("reading an array of cuda:{} on the host failed: {e:?}", d.gpu.ordinal));
    }
    std::mem::replace(buf, Buffer::Bool(Vec::new()))
}

/// Moves `x` to `device`.
pub(crate) fn to_device(x: &Array, device: Device) -> Result<Array, CudaError> {
    match (x.device(), device) {
        (a, b) if a == b => Ok(x.clone()),
        (_, Device::Cpu) => Ok(Array::new(x.shape(), x.buffer().clone())),
        (Device::Cpu, Device::Cuda(n)) => Ok(upload(&gpu(n)?, x)),
        (_, Device::Cuda(n)) => {
            let g = gpu(n)?;
            // Between GPUs through the host: simple, and rare.
            Ok(upload(&g, &Array::new(x.shape(), x.buffer().clone())))
        }
    }
}
