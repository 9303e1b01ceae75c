//! [`Teacher`] on ONNX Runtime through the `ort` crate: loading the runtime library, choosing
//! the execution provider, exposing taps, and converting tensors in and out.

use std::borrow::Cow;
use std::path::Path;

use distill_proto::api::{Dim, Placement, TensorSpec};
use distill_proto::{DType, NamedTensors, Tensor, TensorData};
use ort::environment::Environment;
use ort::ep::{self, ExecutionProvider};
use ort::error::ErrorCode;
use ort::session::builder::SessionBuilder;
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Outlet, TensorElementType, TensorRef, ValueType};

use super::placement::{parse_profile, unmeasured, warmup_inputs};
use super::{Cause, EpChoice, Signature, Teacher, TeacherError};

/// The process-wide environment: ONNX Runtime allows one per process.
static ENVIRONMENT: std::sync::Mutex<Option<Environment>> = std::sync::Mutex::new(None);

/// Loads the ONNX Runtime shared library and builds the process-wide environment (once; later
/// calls return the same environment).
pub fn init_runtime(lib: Option<&Path>) -> Result<Environment, TeacherError> {
    let mut slot = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = slot.as_ref() {
        return Ok(env.clone());
    }
    let lib = lib.ok_or_else(|| {
        TeacherError::Runtime(
            "no ONNX Runtime library given: pass --ort-lib PATH or set ORT_DYLIB_PATH to libonnxruntime.so"
                .into(),
        )
    })?;
    if !lib.is_file() {
        return Err(TeacherError::Runtime(
            format!(
                "ONNX Runtime library {} does not exist (set --ort-lib or ORT_DYLIB_PATH)",
                lib.display()
            )
            .into(),
        ));
    }
    let builder = ort::init_from(lib)
        .map_err(|e| TeacherError::Runtime(Cause::new(format!("loading {}", lib.display()), e)))?;
    let env = builder
        .with_name("teacher-server")
        .build()
        .map_err(|e| TeacherError::Runtime(Cause::of(e)))?;
    *slot = Some(env.clone());
    Ok(env)
}

/// Libraries the CUDA execution provider cannot run without (ort's `CUDA_DYLIBS` and
/// `CUDNN_DYLIBS` also list optional ones, preloaded when found).
const REQUIRED_CUDA_LIBS: &[&str] = &[
    "libcudart.so.13",
    "libcublasLt.so.13",
    "libcublas.so.13",
    "libcurand.so.10",
    "libcudnn.so.9",
];

/// Preloads the CUDA and cuDNN libraries from `dirs` (e.g. the `lib/` folders of the
/// `nvidia-*` PyPI wheels, which each hold some of them), so the CUDA execution provider finds
/// them without `LD_LIBRARY_PATH`: a library already loaded satisfies the provider's lookup by
/// soname. Each name is taken from the first folder holding it; libraries whose own
/// dependencies are not loaded yet are retried after the others. Returns the files loaded.
pub fn preload_cuda_libs(dirs: &[std::path::PathBuf]) -> Result<Vec<String>, TeacherError> {
    let mut pending: Vec<(&str, std::path::PathBuf)> = ep::cuda::CUDA_DYLIBS
        .iter()
        .chain(ep::cuda::CUDNN_DYLIBS)
        .filter_map(|name| {
            let found = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
            match found {
                Some(p) => Some(Ok((*name, p))),
                None if REQUIRED_CUDA_LIBS.contains(name) => Some(Err(*name)),
                None => None,
            }
        })
        .collect::<Result<_, _>>()
        .map_err(|name| {
            TeacherError::Provider(
                format!(
                    "--cuda-lib-dir: {name} is in none of {dirs:?} (give the lib/ folders of the nvidia-* \
                     wheels, under site-packages/nvidia/; `find VENV -name 'libcudart.so.13*'`)"
                )
                .into(),
            )
        })?;
    let mut loaded = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        let mut last_error = String::new();
        pending.retain(|(_, path)| match ort::util::preload_dylib(path) {
            Ok(()) => {
                loaded.push(path.display().to_string());
                false
            }
            Err(e) => {
                last_error = format!("{}: {e}", path.display());
                true
            }
        });
        if pending.len() == before {
            return Err(TeacherError::Provider(
                format!("--cuda-lib-dir: cannot load {last_error}").into(),
            ));
        }
    }
    Ok(loaded)
}

/// The loaded ONNX Runtime version (e.g. `1.31.1`), asked from the library itself;
/// `unknown` when it cannot be read.
pub fn ort_version(lib: Option<&Path>) -> String {
    lib.and_then(version_from_library)
        .or_else(|| {
            // Fall back on the file name, `libonnxruntime.so.1.31.1`.
            let name = lib?.file_name()?.to_str()?;
            let v = name.split(".so.").nth(1)?;
            v.chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                .then(|| v.to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// Calls `OrtGetApiBase()->GetVersionString()` of the already loaded library. ort exposes the
/// version only through its build-info string, which release builds fill with `git-branch=HEAD`.
#[cfg(unix)]
fn version_from_library(lib: &Path) -> Option<String> {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    let path = CString::new(lib.as_os_str().as_bytes()).ok()?;
    // SAFETY: RTLD_NOLOAD only returns a handle to a library that ort::init_from already
    // loaded (null otherwise); OrtGetApiBase has this signature in every ONNX Runtime
    // release, and GetVersionString returns a static NUL-terminated string.
    unsafe {
        let handle = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if handle.is_null() {
            return None;
        }
        let sym = libc::dlsym(handle, c"OrtGetApiBase".as_ptr());
        let version = if sym.is_null() {
            None
        } else {
            let get_base: unsafe extern "C" fn() -> *const ort::sys::OrtApiBase =
                std::mem::transmute(sym);
            let base = get_base();
            if base.is_null() {
                None
            } else {
                let s = ((*base).GetVersionString)();
                (!s.is_null()).then(|| CStr::from_ptr(s).to_string_lossy().into_owned())
            }
        };
        // Drops only the reference taken above; ort keeps its own.
        libc::dlclose(handle);
        version
    }
}

#[cfg(not(unix))]
fn version_from_library(_lib: &Path) -> Option<String> {
    None
}

/// A session of one ONNX model on one execution provider.
pub struct OrtTeacher {
    session: Session,
    signature: Signature,
    provider: String,
    placement: Placement,
}

impl OrtTeacher {
    /// Builds a session from model bytes (taps already added) on the chosen provider.
    pub fn load(
        env: &Environment,
        model: &[u8],
        ep: EpChoice,
        intra_threads: usize,
    ) -> Result<Self, TeacherError> {
        let mut builder = Session::builder(env)
            .map_err(|e| TeacherError::Runtime(Cause::of(e)))?
            // ONNX Runtime's pool threads spin between runs by default: with a cheap teacher
            // that burnt ~45% of the server's CPU (perf, docs/results/bench.md), CPU the
            // request path (decode, store) needs on the same cores.
            .with_intra_op_spinning(false)
            .map_err(|e| TeacherError::Runtime(e.to_string().into()))?;
        if intra_threads > 0 {
            builder = builder
                .with_intra_threads(intra_threads)
                // This error carries the builder back (not `Send`): keep its words only.
                .map_err(|e| TeacherError::Runtime(e.to_string().into()))?;
        }
        let provider = register_provider(&mut builder, ep)?;
        // Profiling is on for the warm-up run only (ending the profile turns it off): its
        // node events say which provider ran each node.
        let profile =
            std::env::temp_dir().join(format!("distill-placement-{}", std::process::id()));
        let mut builder = builder
            .with_profiling(&profile)
            .map_err(|e| TeacherError::Runtime(e.to_string().into()))?;
        let session = match builder.commit_from_memory(model) {
            Ok(s) => s,
            // CUDA can register yet fail when the session is built (a missing cuDNN, say):
            // `auto` promises a CPU fallback, so build again without it.
            Err(e) if ep == EpChoice::Auto && provider == "cuda" => {
                tracing::warn!(error = %e, "session on CUDA failed; falling back to CPU");
                return Self::load(env, model, EpChoice::Cpu, intra_threads);
            }
            Err(e) if provider == "cuda" => {
                return Err(TeacherError::Provider(Cause::new(
                    "--ep cuda: building the session on CUDA failed",
                    e,
                )))
            }
            Err(e) => return Err(TeacherError::Load(Cause::of(e))),
        };
        let signature = signature_of(&session)?;
        let mut teacher = Self {
            session,
            signature,
            provider: provider.to_string(),
            placement: Placement::default(),
        };
        teacher.placement = teacher.measure_placement();
        Ok(teacher)
    }

    /// Where ONNX Runtime placed the nodes, measured by the warm-up run at load.
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Runs one zero-filled row with profiling on, ends the profile and reads the node
    /// placement from it; an unmeasured placement (with the reason) when any step fails.
    fn measure_placement(&mut self) -> Placement {
        let run = warmup_inputs(&self.signature.inputs).and_then(|inputs| {
            self.run(&inputs, &[])
                .map_err(|e| format!("warm-up run: {e}"))
        });
        // Ended whatever the run did, so the session does not keep profiling.
        let ended = self.session.end_profiling();
        let read = ended
            .map_err(|e| format!("ending the profile: {e}"))
            .and_then(|path| {
                let bytes =
                    std::fs::read(&path).map_err(|e| format!("reading the profile {path}: {e}"));
                let _ = std::fs::remove_file(&path);
                bytes
            });
        let placement = run.and(read).and_then(|bytes| parse_profile(&bytes));
        match placement {
            Ok(p) => {
                tracing::info!(providers = ?p.providers, "node placement measured");
                p
            }
            Err(e) => {
                tracing::warn!(error = %e, "node placement not measured");
                unmeasured(e)
            }
        }
    }
}

/// Registers the execution provider; returns the one that will run the graph.
fn register_provider(
    builder: &mut SessionBuilder,
    ep: EpChoice,
) -> Result<&'static str, TeacherError> {
    match ep {
        EpChoice::Cpu => Ok("cpu"),
        EpChoice::Cuda => {
            // `is_available` only says whether the library was built with CUDA; registering
            // is what loads the CUDA libraries, so its error is the one to show.
            if !ep::CUDA::is_available().unwrap_or(false) {
                return Err(TeacherError::Provider(
                    "--ep cuda: this ONNX Runtime library was built without the CUDA execution provider (use the onnxruntime-gpu build or --ep cpu)".into(),
                ));
            }
            ep::CUDA::default().register(builder).map_err(|e| {
                TeacherError::Provider(Cause::new(
                    "--ep cuda: CUDA execution provider is not usable",
                    e,
                ))
            })?;
            Ok("cuda")
        }
        EpChoice::Auto => {
            if ep::CUDA::is_available().unwrap_or(false) {
                match ep::CUDA::default().register(builder) {
                    Ok(()) => return Ok("cuda"),
                    Err(e) => {
                        tracing::warn!(error = %e, "CUDA execution provider not usable; falling back to CPU")
                    }
                }
            } else {
                tracing::info!("ONNX Runtime built without CUDA; using CPU");
            }
            Ok("cpu")
        }
    }
}

/// Maps an ONNX Runtime element type onto the served ones.
fn dtype_of(ty: TensorElementType) -> Option<DType> {
    Some(match ty {
        TensorElementType::Float32 => DType::F32,
        TensorElementType::Float16 => DType::F16,
        TensorElementType::Float64 => DType::F64,
        TensorElementType::Int64 => DType::I64,
        TensorElementType::Int32 => DType::I32,
        TensorElementType::Bool => DType::Bool,
        _ => return None,
    })
}

/// Name, served dtype (or the unsupported type's name) and shape of an outlet.
fn spec_of(outlet: &Outlet) -> Result<TensorSpec, String> {
    match outlet.dtype() {
        ValueType::Tensor {
            ty,
            shape,
            dimension_symbols,
        } => {
            let dtype = dtype_of(*ty).ok_or_else(|| format!("{ty:?}"))?;
            let dims = shape
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    if d >= 0 {
                        Dim::Fixed(d as usize)
                    } else {
                        let sym = dimension_symbols.get(i).map(String::as_str).unwrap_or("");
                        Dim::Dynamic(if sym.is_empty() {
                            "?".into()
                        } else {
                            sym.to_string()
                        })
                    }
                })
                .collect();
            Ok(TensorSpec {
                name: outlet.name().to_string(),
                dtype,
                shape: dims,
            })
        }
        other => Err(format!("{other}")),
    }
}

/// Reads the session's signature; inputs of unsupported types make the model unusable.
fn signature_of(session: &Session) -> Result<Signature, TeacherError> {
    let mut inputs = Vec::new();
    for outlet in session.inputs() {
        let spec = spec_of(outlet).map_err(|ty| {
            TeacherError::Load(
                format!(
                    "input {:?} has type {ty}; supported: f32, f16, f64, i64, i32, bool tensors",
                    outlet.name()
                )
                .into(),
            )
        })?;
        inputs.push(spec);
    }
    let mut outputs = Vec::new();
    let mut unsupported_outputs = Vec::new();
    for outlet in session.outputs() {
        match spec_of(outlet) {
            Ok(spec) => outputs.push(spec),
            Err(ty) => unsupported_outputs.push((outlet.name().to_string(), ty)),
        }
    }
    Ok(Signature {
        inputs,
        outputs,
        unsupported_outputs,
    })
}

/// A borrowed ONNX Runtime view of a tensor (no copy).
fn input_value<'a>(t: &'a Tensor) -> ort::Result<SessionInputValue<'a>> {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    Ok(match t.data() {
        TensorData::F32(v) => TensorRef::from_array_view((shape, v.as_slice()))?
            .into_dyn()
            .into(),
        TensorData::F16(v) => TensorRef::from_array_view((shape, v.as_slice()))?
            .into_dyn()
            .into(),
        TensorData::F64(v) => TensorRef::from_array_view((shape, v.as_slice()))?
            .into_dyn()
            .into(),
        TensorData::I64(v) => TensorRef::from_array_view((shape, v.as_slice()))?
            .into_dyn()
            .into(),
        TensorData::I32(v) => TensorRef::from_array_view((shape, v.as_slice()))?
            .into_dyn()
            .into(),
        TensorData::Bool(v) => TensorRef::from_array_view((shape, v.as_slice()))?
            .into_dyn()
            .into(),
    })
}

/// Copies an output value into a [`Tensor`].
fn output_tensor(name: &str, value: &DynValue) -> Result<Tensor, TeacherError> {
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(TeacherError::Run(
                format!("output {name:?} is a {other}, not a tensor").into(),
            ))
        }
    };
    let err = |e: ort::Error| TeacherError::Run(Cause::new(format!("reading output {name:?}"), e));
    macro_rules! extract {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(err)?;
            (
                shape.iter().map(|&d| d.max(0) as usize).collect::<Vec<_>>(),
                TensorData::$variant(data.to_vec()),
            )
        }};
    }
    let (shape, data) = match dtype_of(ty) {
        Some(DType::F32) => extract!(f32, F32),
        Some(DType::F16) => extract!(half::f16, F16),
        Some(DType::F64) => extract!(f64, F64),
        Some(DType::I64) => extract!(i64, I64),
        Some(DType::I32) => extract!(i32, I32),
        Some(DType::Bool) => extract!(bool, Bool),
        None => {
            return Err(TeacherError::Run(
                format!("output {name:?} has unsupported type {ty:?}").into(),
            ))
        }
    };
    Tensor::new(shape, data)
        .map_err(|e| TeacherError::Run(Cause::new(format!("output {name:?}"), e)))
}

/// Whether a failed run's message is one ONNX Runtime gives when the inputs' shapes do not
/// fit the graph (a broadcast between a fixed-size table and a longer sequence, an index past
/// an embedding table, a reshape of the wrong element count): the request caused it, not
/// the server. Other failures stay server faults.
fn shape_caused(message: &str) -> bool {
    const SHAPE_MESSAGES: [&str; 5] = [
        "Attempting to broadcast an axis by a dimension other than 1",
        "axis dimensions don't match",
        "indices element out of data bounds",
        "The input tensor cannot be reshaped to the requested shape",
        "Got invalid dimensions for input",
    ];
    SHAPE_MESSAGES.iter().any(|m| message.contains(m))
}

impl Teacher for OrtTeacher {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn provider(&self) -> &str {
        &self.provider
    }

    fn run(
        &mut self,
        inputs: &NamedTensors,
        outputs: &[String],
    ) -> Result<NamedTensors, TeacherError> {
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let v = input_value(t)
                .map_err(|e| TeacherError::BadInput(Cause::new(format!("input {name:?}"), e)))?;
            values.push((Cow::Borrowed(name.as_str()), v));
        }
        let result = self.session.run(values).map_err(|e| {
            if e.code() == ErrorCode::InvalidArgument || shape_caused(&e.to_string()) {
                TeacherError::BadInput(Cause::of(e))
            } else {
                TeacherError::Run(Cause::of(e))
            }
        })?;
        outputs
            .iter()
            .map(|name| {
                let value = result.get(name).ok_or_else(|| {
                    TeacherError::Run(format!("the session returned no output {name:?}").into())
                })?;
                Ok((name.clone(), output_tensor(name, value)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_failures_are_told_apart_from_server_faults() {
        assert!(shape_caused("Non-zero status code returned while running Add node. Name:'node_add' Status Message: Attempting to broadcast an axis by a dimension other than 1. 512 by 300000"));
        assert!(!shape_caused("Non-zero status code returned while running MatMul node. Status Message: Failed to allocate memory"));
    }

    #[test]
    fn cuda_preload_names_the_missing_library() {
        let dir = tempfile::tempdir().unwrap();
        let e = preload_cuda_libs(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("libcudart.so.13"), "{e}");
        // A file that is not a library is refused by the loader, with its path.
        for name in REQUIRED_CUDA_LIBS {
            std::fs::write(dir.path().join(name), b"not an ELF file").unwrap();
        }
        let e = preload_cuda_libs(&[dir.path().to_path_buf()]).unwrap_err();
        assert!(e.to_string().contains("cannot load"), "{e}");
    }
}
