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
//! What runs on the host: sorting, the convolutions and window extremes,
//! and integer matrix products are computed by the CPU kernels on host
//! copies and the result put back on the device — correct, not fast.

pub mod codegen;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::sys as cublas_sys;
use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr, LaunchConfig, PushKernelArg,
};

use self::codegen::{Kernel, KernelKey, MAX_RANK};
use super::backend::{Backend, Cpu, Device};
use super::fused::{FusedOp, FusedProgram};
use super::ops::{BinaryOp, CompareOp, LayoutOp, ReduceOp, UnaryOp};
use super::{broadcast_shapes, strides, Array, Buffer, ConvGeometry, DType, IndexMode, Storage};

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

/// The indexing parameters of a kernel, laid out as the prelude's `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Dims {
    rank: i32,
    pad: i32,
    shape: [i64; MAX_RANK],
    st: [[i64; MAX_RANK]; 4],
    base: [i64; 4],
}

// SAFETY: `Dims` is plain data with the C layout of the prelude's struct.
unsafe impl DeviceRepr for Dims {}

impl Dims {
    /// Contiguous operands of the output's shape: offsets are the index.
    fn flat() -> Dims {
        Dims { rank: -1, ..Dims::default() }
    }

    /// The index space `shape` with one stride set per operand (and base
    /// offsets), axes of extent 1 dropped and adjacent axes merged where
    /// every operand allows; `None` when more than [`MAX_RANK`] axes remain.
    fn new(shape: &[usize], operands: &[Vec<i64>], base: &[i64]) -> Option<Dims> {
        let mut axes: Vec<(i64, Vec<i64>)> = Vec::new();
        for (a, &n) in shape.iter().enumerate() {
            if n == 1 {
                continue;
            }
            let st: Vec<i64> = operands.iter().map(|s| s[a]).collect();
            if let Some((pn, pst)) = axes.last_mut() {
                if pst.iter().zip(&st).all(|(p, s)| *p == s * n as i64) {
                    *pn *= n as i64;
                    *pst = st;
                    continue;
                }
            }
            axes.push((n as i64, st));
        }
        if axes.len() > MAX_RANK {
            return None;
        }
        let mut d = Dims { rank: axes.len() as i32, ..Dims::default() };
        for (a, (n, st)) in axes.iter().enumerate() {
            d.shape[a] = *n;
            for (k, s) in st.iter().enumerate() {
                d.st[k][a] = *s;
            }
        }
        d.base[..base.len()].copy_from_slice(base);
        Some(d)
    }

    /// Operands broadcast to `out` (numpy's rule): their strides, 0 along broadcast axes.
    fn broadcast(out: &[usize], operands: &[&[usize]]) -> Option<Dims> {
        if operands.iter().all(|s| super::same_shape(s, out)) {
            return Some(Dims::flat());
        }
        let sts: Vec<Vec<i64>> = operands.iter().map(|s| broadcast_strides(s, out)).collect();
        Dims::new(out, &sts, &[])
    }
}

/// The strides of a row-major array of `shape` read as `out` (broadcasting).
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<i64> {
    let own = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len()).map(|a| if a < lead || shape[a - lead] == 1 { 0 } else { own[a - lead] as i64 }).collect()
}

fn row_major(shape: &[usize]) -> Vec<i64> {
    strides(shape).into_iter().map(|s| s as i64).collect()
}

fn grid(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 1 << 16) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

/// One kernel launch: its arguments as device addresses and values.
struct Launch<'a> {
    gpu: &'a Gpu,
    what: &'a dyn fmt::Debug,
    args: cudarc::driver::LaunchArgs<'a>,
}

impl<'a> Launch<'a> {
    fn new(gpu: &'a Gpu, f: &'a CudaFunction, what: &'a dyn fmt::Debug) -> Launch<'a> {
        Launch { gpu, what, args: gpu.stream.launch_builder(f) }
    }
    fn arg<T: DeviceRepr>(mut self, v: &'a T) -> Self {
        self.args.arg(v);
        self
    }
    fn run(mut self, cfg: LaunchConfig) {
        // SAFETY: each kernel's parameters are pushed in its generated
        // signature's order and types; pointers address blocks sized for
        // the index space the kernel walks.
        unsafe { self.args.launch(cfg) }
            .unwrap_or_else(|e| panic!("cuda:{}: launching kernel {:?} failed: {e:?}", self.gpu.ordinal, self.what));
    }
}

/// The CUDA backend of GPU `ordinal`.
#[derive(Clone, Copy, Debug)]
pub struct Cuda(pub usize);

impl Cuda {
    fn gpu(&self, op: &str) -> Arc<Gpu> {
        gpu_or_panic(self.0, op)
    }

    /// A computation the CPU kernels do: on host copies of the operands,
    /// the result put on this GPU.
    fn on_host(&self, op: &str, f: impl FnOnce(&Cpu) -> Array) -> Array {
        upload(&self.gpu(op), &f(&Cpu))
    }

    /// Half-precision operands widened to f32 on the device (the CPU backend's
    /// rule: compute in f32, round once).
    fn wide(&self, x: Array) -> Array {
        if x.dtype().is_half() {
            self.convert(&x, DType::F32)
        } else {
            x
        }
    }

    fn narrow(&self, y: Array, dtype: DType) -> Array {
        if dtype.is_half() && y.dtype() == DType::F32 {
            self.convert(&y, dtype)
        } else {
            y
        }
    }

    /// `[outer, len, inner]` kernels (strided reductions, arg reductions, scans).
    fn run_3d(&self, g: &Arc<Gpu>, key: KernelKey, x: &Array, out: &Array, axis: usize) {
        let s = x.shape();
        let (outer, len, inner) = (
            s[..axis].iter().product::<usize>() as i64,
            s[axis] as i64,
            s[axis + 1..].iter().product::<usize>() as i64,
        );
        let (xp, op) = (device_buffer(x).ptr(), device_buffer(out).ptr());
        let f = g.function(key);
        Launch::new(g, &f, &key)
            .arg(&xp)
            .arg(&op)
            .arg(&outer)
            .arg(&len)
            .arg(&inner)
            .run(grid((outer * inner) as usize));
    }

    /// `dst` (on the device) gets `src`'s elements through `dims`.
    fn copy(&self, g: &Arc<Gpu>, src: &Array, dst: &Array, n: usize, dims: Dims) {
        if n == 0 {
            return;
        }
        let key = KernelKey::Copy(src.dtype().size_of());
        let (sp, dp, n64) = (device_buffer(src).ptr(), device_buffer(dst).ptr(), n as i64);
        let f = g.function(key);
        Launch::new(g, &f, &key).arg(&sp).arg(&dp).arg(&n64).arg(&dims).run(grid(n));
    }

    /// Moves `x`'s axes so that `axes` come last, in order.
    fn axes_last(&self, x: &Array, axes: &[usize]) -> Array {
        let mut perm: Vec<usize> = (0..x.rank()).filter(|a| !axes.contains(a)).collect();
        perm.extend_from_slice(axes);
        self.layout(&LayoutOp::Permute(perm), x)
    }

    /// Runs a fused elementwise program as one kernel.
    pub(crate) fn fused(&self, program: &FusedProgram, ins: &[&Array], dtype: DType, shape: &[usize]) -> Vec<Array> {
        let g = self.gpu("fused");
        let compute = if dtype.is_half() { DType::F32 } else { dtype };
        let ins: Vec<Array> = ins
            .iter()
            .map(|x| {
                let x = g.here(x, "fused");
                if x.dtype() == dtype {
                    self.wide(x)
                } else {
                    x
                }
            })
            .collect();
        // A reduction of a comparison's mask is not one the jit forms; the CPU runs it if it comes.
        let reduces_mask =
            program.reduction().is_some_and(|r| matches!(program.steps()[r.step].op, FusedOp::Compare(_)));
        let strided: Vec<&[usize]> = ins.iter().take(4).map(|x| x.shape()).collect();
        let dims = Dims::broadcast(shape, &strided);
        let wide_shapes = ins.iter().skip(4).all(|x| super::same_shape(x.shape(), shape));
        let Some(dims) = dims.filter(|_| wide_shapes && !reduces_mask) else {
            return Cpu
                .fused(program, &ins.iter().collect::<Vec<_>>(), compute, shape)
                .into_iter()
                .map(|y| upload(&g, &y))
                .map(|y| self.narrow(y, dtype))
                .collect();
        };
        let in_dtypes: Vec<DType> = ins.iter().map(Array::dtype).collect();
        let k = codegen::fused(program, compute, ins.len(), &in_dtypes);
        let mut out_dtypes = program.output_dtypes(compute);
        if program.reduction().is_some() {
            out_dtypes.pop();
            out_dtypes.push(compute); // the reduced step's values, full size
        }
        let outs: Vec<Array> = out_dtypes.iter().map(|&d| g.empty(d, shape)).collect();
        let n: usize = shape.iter().product();
        let ptrs: Vec<u64> = ins.iter().chain(&outs).map(|a| device_buffer(a).ptr()).collect();
        let n64 = n as i64;
        if n > 0 {
            let f = g.fused_function(&k);
            let mut l = Launch::new(&g, &f, &k.name);
            for p in &ptrs {
                l = l.arg(p);
            }
            l.arg(&n64).arg(&dims).run(grid(n));
        }
        let mut outs = outs;
        if let Some(r) = program.reduction() {
            let full = outs.pop().expect("the reduced values are the last output");
            let axes: Vec<usize> = (shape.len() - r.axes..shape.len()).collect();
            outs.push(self.reduce(r.op, &full, &axes));
        }
        outs.into_iter().map(|y| self.narrow(y, dtype)).collect()
    }
}

impl Backend for Cuda {
    fn device(&self) -> Device {
        Device::Cuda(self.0)
    }

    fn unary(&self, op: UnaryOp, x: &Array) -> Array {
        let g = self.gpu(op.name());
        let dtype = x.dtype();
        let x = self.wide(g.here(x, op.name()));
        if !matches!(x.dtype(), DType::F32 | DType::F64 | DType::I64)
            || (x.dtype() == DType::I64 && !op.takes_integers())
        {
            return self.on_host(op.name(), |c| c.unary(op, &x));
        }
        let out = g.empty(x.dtype(), x.shape());
        let n = x.size();
        if n > 0 {
            let key = KernelKey::Unary(op, x.dtype());
            let (xp, yp, n64) = (device_buffer(&x).ptr(), device_buffer(&out).ptr(), n as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&xp).arg(&yp).arg(&n64).run(grid(n));
        }
        self.narrow(out, dtype)
    }

    fn binary(&self, op: BinaryOp, a: &Array, b: &Array) -> Array {
        let g = self.gpu(op.name());
        let dtype = a.dtype();
        let (a, b) = (self.wide(g.here(a, op.name())), self.wide(g.here(b, op.name())));
        let out_shape = broadcast_shapes(a.shape(), b.shape()).expect("checked by the shape rule");
        let dims = Dims::broadcast(&out_shape, &[a.shape(), b.shape()]);
        let supported =
            matches!(a.dtype(), DType::F32 | DType::F64) || (a.dtype() == DType::I64 && op.takes_integers());
        let Some(dims) = dims.filter(|_| supported) else {
            return self.narrow(self.on_host(op.name(), |c| c.binary(op, &a, &b)), dtype);
        };
        let out = g.empty(a.dtype(), &out_shape);
        let n = out.size();
        if n > 0 {
            let key = KernelKey::Binary(op, a.dtype());
            let (ap, bp, yp, n64) =
                (device_buffer(&a).ptr(), device_buffer(&b).ptr(), device_buffer(&out).ptr(), n as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&ap).arg(&bp).arg(&yp).arg(&n64).arg(&dims).run(grid(n));
        }
        self.narrow(out, dtype)
    }

    fn compare(&self, op: CompareOp, a: &Array, b: &Array) -> Array {
        let g = self.gpu(op.name());
        let (a, b) = (self.wide(g.here(a, op.name())), self.wide(g.here(b, op.name())));
        let out_shape = broadcast_shapes(a.shape(), b.shape()).expect("checked by the shape rule");
        let Some(dims) = Dims::broadcast(&out_shape, &[a.shape(), b.shape()]) else {
            return self.on_host(op.name(), |c| c.compare(op, &a, &b));
        };
        let out = g.empty(DType::Bool, &out_shape);
        let n = out.size();
        if n > 0 {
            let key = KernelKey::Compare(op, a.dtype());
            let (ap, bp, yp, n64) =
                (device_buffer(&a).ptr(), device_buffer(&b).ptr(), device_buffer(&out).ptr(), n as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&ap).arg(&bp).arg(&yp).arg(&n64).arg(&dims).run(grid(n));
        }
        out
    }

    fn select(&self, cond: &Array, a: &Array, b: &Array) -> Array {
        let g = self.gpu("select");
        let (c, a, b) = (g.here(cond, "select"), g.here(a, "select"), g.here(b, "select"));
        let ab = broadcast_shapes(a.shape(), b.shape()).expect("checked by the shape rule");
        let out_shape = broadcast_shapes(c.shape(), &ab).expect("checked by the shape rule");
        let Some(dims) = Dims::broadcast(&out_shape, &[c.shape(), a.shape(), b.shape()]) else {
            return self.on_host("select", |cpu| cpu.select(&c, &a, &b));
        };
        let out = g.empty(a.dtype(), &out_shape);
        let n = out.size();
        if n > 0 {
            let key = KernelKey::Select(a.dtype().size_of());
            let ptrs =
                [device_buffer(&c).ptr(), device_buffer(&a).ptr(), device_buffer(&b).ptr(), device_buffer(&out).ptr()];
            let n64 = n as i64;
            let f = g.function(key);
            Launch::new(&g, &f, &key)
                .arg(&ptrs[0])
                .arg(&ptrs[1])
                .arg(&ptrs[2])
                .arg(&ptrs[3])
                .arg(&n64)
                .arg(&dims)
                .run(grid(n));
        }
        out
    }

    fn convert(&self, x: &Array, dtype: DType) -> Array {
        let g = self.gpu("convert");
        let x = g.here(x, "convert");
        if x.dtype() == dtype {
            return x;
        }
        let out = g.empty(dtype, x.shape());
        let n = x.size();
        if n > 0 {
            let key = KernelKey::Convert(x.dtype(), dtype);
            let (xp, yp, n64) = (device_buffer(&x).ptr(), device_buffer(&out).ptr(), n as i64);
            let f = g.function(key);
            Launch::new(&g, &f, &key).arg(&xp).arg(&yp).arg(&n64).run(grid(n));
        }
        out
    }

    fn reduce(&self, op: ReduceOp, x: &Array, axes: &[usize]) -> Array {
        let g = self.gpu(op.name());
        let dtype = x.dtype();
        let x = self.wide(g.here(x, op.name()));
        let out_shape: Vec<usize> =
            x.shape().iter().enumerate().filter(|(a, _)| !axes.contains(a)).map(|(_, &n)| n).collect();
        if !codegen::NUMERIC.contains(&x.dtype()) {
            return self.on_host(op.name(), |c| c.reduce(op, &x, axes));
        }
        let out = g.empty(x.dtype(), &out_shape);
        if out.size() == 0 {
            return self.narrow(out, dtype);
        }
        // Axes of extent 1 change nothing: without them the reduced axes are
        // as contiguous as they can be (as the CPU's runs are).
        let keep: Vec<usize> = (0..x.rank()).filter(|&a| x.shape()[a] != 1).collect();
        let shape: Vec<usize> = keep.iter().map(|&a| x.shape()[a]).collect();
        let axes: Vec<usize> = keep.iter().enumerate().filter(|(_, a)| axes.contains(a)).map(|(i, _)| i).collect();
        let x = x.reshape(&shape);
        if axes.is_empty() {
            return self.narrow(x.reshape(&out_shape), dtype);
        }
        let contiguous = axes.windows(2).all(|w| w[1] == w[0] + 1);
        let trailing = axes[axes.len() - 1] + 1 == x.rank();
        let len: usize = axes.iter().map(|&a| shape[a]).product();
        if contiguous && !trailing {
            // [outer, len, inner] with the reduced block in the middle: a thread per output.
            let outer: usize = shape[..axes[0]].iter().product();
            let merged = x.reshape(&[outer, len, out.size() / outer.max(1)]);
            self.run_3d(&g, KernelKey::ReduceStrided(op, x.dtype()), &merged, &out, 1);
            return self.narrow(out, dtype);
        }
        let rows_last = if contiguous { x } else { self.axes_last(&x, &axes) };
        let rows = out.size();
        // Few long rows: each split over many blocks, the partial results
        // reduced by a second pass, so a full reduction uses the whole GPU.
        let parts = if rows >= 256 { 1 } else { (len / 8192).clamp(1, 1024) };
        if parts > 1 {
            let partial = g.empty(rows_last.dtype(), &[rows, parts]);
            reduce_rows(&g, op, &rows_last, &partial, rows, len, parts);
            reduce_rows(&g, op, &partial, &out, rows, parts, 1);
        } else {
            reduce_rows(&g, op, &rows_last, &out, rows, len, 1);
        }
        self.narrow(out, dtype)
    }

    fn arg_reduce(&self, op: ReduceOp, x: &Array, axis: usize) -> Array {
        let g = self.gpu(op.name());
        let x = self.wide(g.here(x, op.name()));
        if !codegen::NUMERIC.contains(&x.dtype()) || x.shape()[axis] == 0 {
            return self.on_host(op.name(), |c| c.arg_reduce(op, &x, axis));
        }
        let out_shape: Vec<usize> = x.shape().iter().enumerate().filter(|&(a, _)| a != axis).map(|(_, &n)| n).collect();
        let out = g.empty(DType::I64, &out_shape);
        if out.size() > 0 {
            self.run_3d(&g, KernelKey::ArgReduce(op, x.dtype()), &x, &out, axis);
        }
        out
    }

    fn scan(&self, op: ReduceOp, x: &Array, axis: usize, reverse: bool) -> Array {
        let g = self.gpu(op.name());
        let dtype = x.dtype();
        let x = self.wide(g.here(x, op.name()));
        if !codegen::NUMERIC.contains(&x.dtype()) {
            return self.on_host(op.name(), |c| c.scan(op, &x, axis, reverse));
        }
        let out = g.empty(x.dtype(), x.shape());
        if out.size() > 0 {
            self.run_3d(&g, KernelKey::Scan(op, x.dtype(), reverse), &x, &out, axis);
        }
        self.narrow(out, dtype)
    }

    fn layout(&self, op: &LayoutOp, x: &Array) -> Array {
        let g = self.gpu("layout");
        let x = g.here(x, "layout");
        let own = row_major(x.shape());
        let (out_shape, src, base): (Vec<usize>, Vec<i64>, i64) = match op {
            LayoutOp::Broadcast(shape) => (shape.clone(), broadcast_strides(x.shape(), shape), 0),
            LayoutOp::Permute(perm) => {
                (perm.iter().map(|&p| x.shape()[p]).collect(), perm.iter().map(|&p| own[p]).collect(), 0)
            }
            LayoutOp::Slice { starts, ends } => (
                starts.iter().zip(ends).map(|(s, e)| e - s).collect(),
                own.clone(),
                starts.iter().zip(&own).map(|(&s, st)| s as i64 * st).sum(),
            ),
            LayoutOp::Rev(axes) => {
                let mut st = own.clone();
                let mut base = 0;
                for &a in axes {
                    base += (x.shape()[a] as i64 - 1).max(0) * own[a];
                    st[a] = -own[a];
                }
                (x.shape().to_vec(), st, base)
            }
            LayoutOp::Pad { lo, hi } => {
                let shape: Vec<usize> = x.shape().iter().zip(lo.iter().zip(hi)).map(|(n, (l, h))| n + l + h).collect();
                let out = g.zeros(x.dtype(), &shape);
                let dst = row_major(&shape);
                let base = lo.iter().zip(&dst).map(|(&l, s)| l as i64 * s).sum();
                match Dims::new(x.shape(), &[own, dst], &[0, base]) {
                    Some(d) => self.copy(&g, &x, &out, x.size(), d),
                    None => return self.on_host("pad", |c| c.layout(op, &x)),
                }
                return out;
            }
        };
        let out = g.empty(x.dtype(), &out_shape);
        match Dims::new(&out_shape, &[src, row_major(&out_shape)], &[base, 0]) {
            Some(d) => self.copy(&g, &x, &out, out.size(), d),
            None => return self.on_host("layout", |c| c.layout(op, &x)),
        }
        out
    }

    fn concat(&self, xs: &[&Array], axis: usize) -> Array {
        let g = self.gpu("concat");
        let xs: Vec<Array> = xs.iter().map(|x| g.here(x, "concat")).collect();
        let mut shape = xs[0].shape().to_vec();
        shape[axis] = xs.iter().map(|x| x.shape()[axis]).sum();
        let out = g.empty(xs[0].dtype(), &shape);
        let dst = row_major(&shape);
        let mut at = 0;
        for x in &xs {
            let base = at as i64 * dst[axis];
            match Dims::new(x.shape(), &[row_major(x.shape()), dst.clone()], &[0, base]) {
                Some(d) => self.copy(&g, x, &out, x.size(), d),
                None => return self.on_host("concat", |c| c.concat(&xs.iter().collect::<Vec<_>>(), axis)),
            }
            at += x.shape()[axis];
        }
        out
    }

    fn gather(&self, x: &Array, axis: usize, idx: &Array, mode: IndexMode) -> Array {
        let g = self.gpu("gather");
        let (x, idx) = (g.here(x, "gather"), g.here(idx, "gather"));
        let s = x.shape();
        let shape: Vec<usize> = s[..axis].iter().chain(idx.shape()).chain(&s[axis + 1..]).copied().collect();
        let out = g.empty(x.dtype(), &shape);
        if out.size() > 0 {
            let key = KernelKey::Gather(x.dtype());
            let p = [device_buffer(&x).ptr(), device_buffer(&idx).ptr(), device_buffer(&out).ptr()];
            let dims = [
                s[..axis].iter().product::<usize>() as i64,
                s[axis] as i64,
                s[axis + 1..].iter().product::<usize>() as i64,
                idx.size() as i64,
            ];
            let m = mode_code(mode);
            let f = g.function(key);
            Launch::new(&g, &f, &key)
                .arg(&p[0])
                .arg(&p[1])
                .arg(&p[2])
                .arg(&dims[0])
                .arg(&dims[1])
                .arg(&dims[2])
                .arg(&dims[3])
                .arg(&m)
                .run(grid(out.size()));
        }
        out
    }

    fn scatter_add(&self, x: &Array, axis: usize, idx: &Array, updates: &Array, mode: IndexMode) -> Array {
        let g = self.gpu("scatter_add");
        let dtype = x.dtype();
        let (x, idx, updates) = (
            self.wide(g.here(x, "scatter_add")),
            g.here(idx, "scatter_add"),
            self.wide(g.here(updates, "scatter_add")),
        );
        if !codegen::SCATTER.contains(&x.dtype()) {
            return self.on_host("scatter_add", |c| c.scatter_add(&x, axis, &idx, &updates, mode));
        }
        // A copy of the operand, which the updates are added into.
        let out = g.empty(x.dtype(), x.shape());
        let own = row_major(x.shape());
        self.copy(&g, &x, &out, x.size(), Dims::new(x.shape(), &[own.clone(), own], &[0, 0]).unwrap_or(Dims::flat()));
        if updates.size() > 0 {
            let s = x.shape();
            let key = KernelKey::ScatterAdd(x.dtype());
            let p = [device_buffer(&out).ptr(), device_buffer(&idx).ptr(), device_buffer(&updates).ptr()];
            let dims = [
                s[..axis].iter().product::<usize>() as i64,
                s[axis] as i64,
                s[axis + 1..].iter().product::<usize>() as i64,
                idx.size() as i64,
            ];
            let m = mode_code(mode);
            let f = g.function(key);
            Launch::new(&g, &f, &key)
                .arg(&p[0])
                .arg(&p[1])
                .arg(&p[2])
                .arg(&dims[0])
                .arg(&dims[1])
                .arg(&dims[2])
                .arg(&dims[3])
                .arg(&m)
                .run(grid(updates.size()));
        }
        self.narrow(out, dtype)
    }

    fn sort(&self, x: &Array, axis: usize, descending: bool) -> (Array, Array) {
        let g = self.gpu("sort");
        let (v, i) = Cpu.sort(x, axis, descending);
        (upload(&g, &v), upload(&g, &i))
    }

    fn matmul(&self, a: &Array, b: &Array, ta: bool, tb: bool) -> Array {
        let g = self.gpu("matmul");
        let (a, b) = (g.here(a, "matmul"), g.here(b, "matmul"));
        let Some((data, compute)) = gemm_types(a.dtype()) else {
            return self.on_host("matmul", |c| c.matmul(&a, &b, ta, tb));
        };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k) = if ta { (a.shape()[ra - 1], a.shape()[ra - 2]) } else { (a.shape()[ra - 2], a.shape()[ra - 1]) };
        let n = if tb { b.shape()[rb - 2] } else { b.shape()[rb - 1] };
        let batch: usize = a.shape()[..ra - 2].iter().product();
        let mut shape = a.shape()[..ra - 2].to_vec();
        shape.extend([m, n]);
        if k == 0 {
            return g.zeros(a.dtype(), &shape);
        }
        let out = g.empty(a.dtype(), &shape);
        if out.size() == 0 {
            return out;
        }
        let dims = [m, n, k, batch];
        assert!(
            dims.iter().all(|&d| d <= i32::MAX as usize),
            "matmul: {:?} @ {:?} exceeds cuBLAS's 32-bit dimensions",
            a.shape(),
            b.shape()
        );
        use cublas_sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ.
        let (op_b, ldb) = if tb { (CUBLAS_OP_T, k) } else { (CUBLAS_OP_N, n) };
        let (op_a, lda) = if ta { (CUBLAS_OP_T, m) } else { (CUBLAS_OP_N, k) };
        let (one64, zero64, one32, zero32) = (1f64, 0f64, 1f32, 0f32);
        let (alpha, beta): (*const std::ffi::c_void, *const std::ffi::c_void) = if a.dtype() == DType::F64 {
            ((&one64 as *const f64).cast(), (&zero64 as *const f64).cast())
        } else {
            ((&one32 as *const f32).cast(), (&zero32 as *const f32).cast())
        };
        let (ap, bp, cp) = (device_buffer(&a).ptr(), device_buffer(&b).ptr(), device_buffer(&out).ptr());
        g.bind("matmul");
        // SAFETY: the pointers address arrays of the extents passed; alpha and
        // beta outlive the call, which only queues the product on the stream.
        unsafe {
            cudarc::cublas::result::gemm_strided_batched_ex(
                *g.blas.handle(),
                op_b,
                op_a,
                n as i32,
                m as i32,
                k as i32,
                alpha,
                bp as *const std::ffi::c_void,
                data,
                ldb as i32,
                (k * n) as i64,
                ap as *const std::ffi::c_void,
                data,
                lda as i32,
                (m * k) as i64,
                beta,
                cp as *mut std::ffi::c_void,
                data,
                n as i32,
                (m * n) as i64,
                batch as i32,
                compute,
                cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .unwrap_or_else(|e| panic!("matmul on cuda:{}: cuBLAS failed: {e:?}", g.ordinal));
        out
    }

    fn conv(&self, x: &Array, w: &Array, geo: &ConvGeometry, groups: usize) -> Array {
        self.on_host("conv", |c| c.conv(x, w, geo, groups))
    }

    fn conv_kernel_grad(&self, x: &Array, ct: &Array, window: &[usize], geo: &ConvGeometry, groups: usize) -> Array {
        self.on_host("conv", |c| c.conv_kernel_grad(x, ct, window, geo, groups))
    }

    fn conv_input_grad(&self, ct: &Array, w: &Array, geo: &ConvGeometry, groups: usize, input: &[usize]) -> Array {
        self.on_host("conv", |c| c.conv_input_grad(ct, w, geo, groups, input))
    }

    fn window_arg_extreme(
        &self,
        x: &Array,
        op: ReduceOp,
        window: &[usize],
        strides: &[usize],
        padding: &[(usize, usize)],
    ) -> Array {
        self.on_host("reduce_window", |c| c.window_arg_extreme(x, op, window, strides, padding))
    }

    fn fused(&self, program: &FusedProgram, ins: &[&Array], dtype: DType, shape: &[usize]) -> Vec<Array> {
        Cuda::fused(self, program, ins, dtype, shape)
    }
}

/// `out[r * parts + p]` = the reduction of part `p` of row `r` of `x`
/// (`[rows, len]`, contiguous, each row cut into `parts` runs).
fn reduce_rows(g: &Gpu, op: ReduceOp, x: &Array, out: &Array, rows: usize, len: usize, parts: usize) {
    let key = KernelKey::ReduceRows(op, x.dtype());
    let (xp, yp) = (device_buffer(x).ptr(), device_buffer(out).ptr());
    let (rows64, len64, parts64) = (rows as i64, len as i64, parts as i64);
    let f = g.function(key);
    let cfg = LaunchConfig {
        grid_dim: ((rows * parts).clamp(1, 65535) as u32, 1, 1),
        block_dim: (codegen::REDUCE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    Launch::new(g, &f, &key).arg(&xp).arg(&yp).arg(&rows64).arg(&len64).arg(&parts64).run(cfg);
}

fn mode_code(mode: IndexMode) -> i32 {
    match mode {
        IndexMode::Fill => 0,
        IndexMode::FillZero => 1,
        IndexMode::Clip => 2,
    }
}

/// cuBLAS's element and compute types for a float dtype (the 16-bit ones
/// accumulate in f32 and round once, as on the CPU).
fn gemm_types(dtype: DType) -> Option<(cublas_sys::cudaDataType, cublas_sys::cublasComputeType_t)> {
    use cublas_sys::cublasComputeType_t::{CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_64F};
    use cublas_sys::cudaDataType::{CUDA_R_16BF, CUDA_R_16F, CUDA_R_32F, CUDA_R_64F};
    Some(match dtype {
        DType::F16 => (CUDA_R_16F, CUBLAS_COMPUTE_32F),
        DType::BF16 => (CUDA_R_16BF, CUBLAS_COMPUTE_32F),
        DType::F32 => (CUDA_R_32F, CUBLAS_COMPUTE_32F),
        DType::F64 => (CUDA_R_64F, CUBLAS_COMPUTE_64F),
        DType::I64 | DType::Bool => return None,
    })
}
