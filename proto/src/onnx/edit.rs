//! Exposing inner tensors of a model as extra graph outputs ("taps"), so a teacher's hidden
//! features can be served and stored beside its logits.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use super::builder::tensor_type;
use super::pb::{
    tensor_shape_proto::{dimension::Value as DimValue, Dimension},
    type_proto, GraphProto, ModelProto, NodeProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::{dtype_of, elem_type, elem_type_name, tensor_proto::DataType, OnnxError};
use crate::DType;

/// Name given to the batch axis of a tapped output whose first axis is not already symbolic.
const BATCH_DIM: &str = "batch";
/// How many close names an unknown-tensor error lists.
const MAX_CANDIDATES: usize = 8;

/// Inner tensors a user may tap: every node output that is not already a graph output,
/// in node order, without duplicates.
pub fn tappable_tensors(model: &ModelProto) -> Vec<String> {
    match &model.graph {
        Some(graph) => tappable_in(graph),
        None => Vec::new(),
    }
}

fn tappable_in(graph: &GraphProto) -> Vec<String> {
    let outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let mut seen = HashSet::new();
    let mut names = Vec::new();
    for node in &graph.node {
        for out in &node.output {
            // An empty name marks an optional output the node does not produce.
            if !out.is_empty() && !outputs.contains(out.as_str()) && seen.insert(out.as_str()) {
                names.push(out.clone());
            }
        }
    }
    names
}

/// A tap request: an inner tensor name and, when the model carries no value_info for it, its dtype.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tap {
    /// Tensor name in the graph.
    pub tensor: String,
    /// Element type to declare when the model does not say.
    pub dtype: Option<DType>,
}

impl Tap {
    /// A tap of `tensor` whose element type comes from the model (or defaults to f32).
    pub fn new(tensor: impl Into<String>) -> Self {
        Tap {
            tensor: tensor.into(),
            dtype: None,
        }
    }
}

/// Parses a dtype suffix of a tap: distill's names and the common long spellings.
fn parse_dtype(s: &str) -> Option<DType> {
    Some(match s.to_ascii_lowercase().as_str() {
        "f32" | "float" | "float32" => DType::F32,
        "f16" | "half" | "float16" => DType::F16,
        "f64" | "double" | "float64" => DType::F64,
        "i64" | "int64" => DType::I64,
        "i32" | "int32" => DType::I32,
        "bool" => DType::Bool,
        _ => return None,
    })
}

impl FromStr for Tap {
    type Err = OnnxError;

    /// Parses `NAME` or `NAME:dtype` (e.g. `/fc1/Relu_output_0:f32`). Tensor names may hold
    /// colons themselves (`dense/BiasAdd:0`): only a suffix that names a dtype is taken as one.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| OnnxError::InvalidTap {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (tensor, dtype) = match spec.rsplit_once(':') {
            Some((name, suffix)) => match parse_dtype(suffix) {
                Some(dtype) => (name, Some(dtype)),
                None => (spec, None),
            },
            None => (spec, None),
        };
        if tensor.trim().is_empty() {
            return Err(invalid(
                "the tensor name is empty (expected NAME or NAME:dtype, dtype one of f32, f16, f64, i64, i32, bool)",
            ));
        }
        Ok(Tap {
            tensor: tensor.to_string(),
            dtype,
        })
    }
}

impl std::fmt::Display for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.dtype {
            Some(d) => write!(f, "{}:{}", self.tensor, d),
            None => f.write_str(&self.tensor),
        }
    }
}

/// Adds each tap as an extra graph output, after the existing outputs and in the order given.
///
/// The element type is the one the model declares (value_info), else the tap's dtype, else the
/// one inferred from the producing node (e.g. a Gather from an f32 table), else f32. The shape is
/// the declared one with its first axis made the symbolic `batch` axis, or left unknown for ONNX
/// Runtime to infer. The model is left untouched when any tap is rejected.
/// Returns the element type chosen for each tap.
pub fn add_taps(model: &mut ModelProto, taps: &[Tap]) -> Result<Vec<DType>, OnnxError> {
    let graph = model.graph.as_mut().ok_or(OnnxError::NoGraph)?;
    let tappable = tappable_in(graph);
    let tappable_set: HashSet<&str> = tappable.iter().map(String::as_str).collect();
    let declared: HashMap<&str, &TypeProto> = graph
        .value_info
        .iter()
        .filter_map(|vi| vi.r#type.as_ref().map(|t| (vi.name.as_str(), t)))
        .collect();
    let inferred = infer_elem_types(graph);

    let mut seen = HashSet::new();
    let mut new_outputs = Vec::with_capacity(taps.len());
    let mut dtypes = Vec::with_capacity(taps.len());
    for tap in taps {
        let name = tap.tensor.as_str();
        if !seen.insert(name) {
            return Err(OnnxError::DuplicateTap(name.to_string()));
        }
        if graph.output.iter().any(|o| o.name == name) {
            return Err(OnnxError::AlreadyOutput(name.to_string()));
        }
        if !tappable_set.contains(name) {
            return Err(OnnxError::UnknownTensor {
                name: name.to_string(),
                candidates: close_names(name, &tappable),
            });
        }
        let (dtype, shape) = match declared.get(name) {
            Some(ty) => {
                let (elem, shape) = declared_tensor(name, ty)?;
                match elem {
                    Some(declared) => {
                        if let Some(requested) = tap.dtype.filter(|r| *r != declared) {
                            return Err(OnnxError::DTypeConflict {
                                tensor: name.to_string(),
                                declared,
                                requested,
                            });
                        }
                        (declared, shape)
                    }
                    None => (undeclared_dtype(tap, &inferred)?, shape),
                }
            }
            None => (undeclared_dtype(tap, &inferred)?, None),
        };
        new_outputs.push(ValueInfoProto {
            name: name.to_string(),
            r#type: Some(tensor_type(elem_type(dtype), shape.map(with_batch_axis))),
            ..Default::default()
        });
        dtypes.push(dtype);
    }
    graph.output.extend(new_outputs);
    Ok(dtypes)
}

/// Element type and shape of a declared tensor type; `None` element type when left undefined.
fn declared_tensor(
    name: &str,
    ty: &TypeProto,
) -> Result<(Option<DType>, Option<TensorShapeProto>), OnnxError> {
    match &ty.value {
        Some(type_proto::Value::TensorType(t)) => {
            if t.elem_type == DataType::Undefined as i32 {
                return Ok((None, t.shape.clone()));
            }
            match dtype_of(t.elem_type) {
                Some(d) => Ok((Some(d), t.shape.clone())),
                None => Err(OnnxError::Unsupported(format!(
                    "tensor `{name}` has element type {}; taps must be f32, f16, f64, i64, i32 or bool",
                    elem_type_name(t.elem_type)
                ))),
            }
        }
        Some(_) => Err(OnnxError::Unsupported(format!(
            "tensor `{name}` is not a dense tensor (a sequence, map, optional or sparse value)"
        ))),
        None => Ok((None, None)),
    }
}

/// The element type of a tap the model declares nothing about.
fn undeclared_dtype(tap: &Tap, inferred: &HashMap<String, i32>) -> Result<DType, OnnxError> {
    if let Some(d) = tap.dtype {
        return Ok(d);
    }
    match inferred.get(&tap.tensor) {
        None => Ok(DType::F32),
        Some(&elem) => dtype_of(elem).ok_or_else(|| {
            OnnxError::Unsupported(format!(
                "tensor `{}` appears to have element type {}; taps must be f32, f16, f64, i64, i32 or bool \
                 (if that is wrong, give the dtype as `{}:f32`)",
                tap.tensor,
                elem_type_name(elem),
                tap.tensor
            ))
        }),
    }
}

/// Makes the first axis the symbolic batch axis unless it already is symbolic (then its name
/// ties it to the inputs' batch axis and is kept).
fn with_batch_axis(mut shape: TensorShapeProto) -> TensorShapeProto {
    if let Some(first) = shape.dim.first_mut() {
        if !matches!(&first.value, Some(DimValue::DimParam(p)) if !p.is_empty()) {
            *first = Dimension {
                value: Some(DimValue::DimParam(BATCH_DIM.to_string())),
                ..Default::default()
            };
        }
    }
    shape
}

/// Element types of the graph's values: declared ones (inputs, outputs, value_info,
/// initializers) and those that follow from common operators, walking nodes in order.
/// Exporters such as PyTorch write no value_info for inner tensors, so this is what lets a tap
/// of e.g. an embedding Gather or an ArgMax get the right type without the user saying.
fn infer_elem_types(graph: &GraphProto) -> HashMap<String, i32> {
    let mut types: HashMap<String, i32> = HashMap::new();
    let mut declare = |name: &str, ty: &Option<TypeProto>| {
        if let Some(TypeProto {
            value: Some(type_proto::Value::TensorType(t)),
            ..
        }) = ty
        {
            if t.elem_type != DataType::Undefined as i32 {
                types.insert(name.to_string(), t.elem_type);
            }
        }
    };
    for vi in graph
        .input
        .iter()
        .chain(&graph.output)
        .chain(&graph.value_info)
    {
        declare(&vi.name, &vi.r#type);
    }
    for init in &graph.initializer {
        types.insert(init.name.clone(), init.data_type);
    }
    for node in &graph.node {
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            continue; // custom operators: nothing is known about them
        }
        for (i, out) in node.output.iter().enumerate() {
            if out.is_empty() || types.contains_key(out) {
                continue;
            }
            if let Some(t) = node_output_type(node, i, &types) {
                types.insert(out.clone(), t);
            }
        }
    }
    types
}

/// The element type of output `index` of a standard operator, when it follows from its inputs
/// or attributes.
fn node_output_type(node: &NodeProto, index: usize, types: &HashMap<String, i32>) -> Option<i32> {
    let input = |i: usize| node.input.get(i).and_then(|n| types.get(n)).copied();
    let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
    let int64 = DataType::Int64 as i32;
    let float = DataType::Float as i32;
    let boolean = DataType::Bool as i32;
    match node.op_type.as_str() {
        "Cast" => attr("to").and_then(|a| a.i).map(|to| to as i32),
        "CastLike" => input(1),
        "Constant" => {
            let a = node.attribute.first()?;
            match a.name.as_str() {
                "value" => a.t.as_ref().map(|t| t.data_type),
                "value_float" | "value_floats" => Some(float),
                "value_int" | "value_ints" => Some(int64),
                _ => None,
            }
        }
        "ConstantOfShape" => Some(
            attr("value")
                .and_then(|a| a.t.as_ref())
                .map_or(float, |t| t.data_type),
        ),
        "Shape" | "Size" | "ArgMax" | "ArgMin" | "NonZero" => Some(int64),
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "Not" | "And" | "Or"
        | "Xor" | "IsNaN" | "IsInf" => Some(boolean),
        "TopK" => {
            if index == 0 {
                input(0)
            } else {
                Some(int64)
            }
        }
        "MaxPool" => {
            if index == 0 {
                input(0)
            } else {
                Some(int64)
            }
        }
        "Where" => input(1),
        // Outputs of the first input's type (for multi-output ops: the main output only,
        // except Split whose outputs all share it).
        "Split" => input(0),
        op if index == 0 && SAME_AS_FIRST_INPUT.contains(&op) => input(0),
        _ => None,
    }
}

/// Standard operators whose first output has the element type of their first input.
const SAME_AS_FIRST_INPUT: &[&str] = &[
    "Abs",
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Conv",
    "ConvTranspose",
    "Cos",
    "CumSum",
    "DepthToSpace",
    "Div",
    "Dropout",
    "Einsum",
    "Elu",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "GroupNormalization",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "LayerNormalization",
    "LeakyRelu",
    "Log",
    "LogSoftmax",
    "LpNormalization",
    "MatMul",
    "Max",
    "Mean",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "PRelu",
    "Range",
    "Reciprocal",
    "ReduceL2",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "Selu",
    "Sigmoid",
    "Sign",
    "Sin",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tanh",
    "Tile",
    "Transpose",
    "Trilu",
    "Unsqueeze",
];

/// Tappable names closest to `name`, best first: names containing it (or contained in it) before
/// others, then by edit distance, ignoring case.
fn close_names(name: &str, tappable: &[String]) -> Vec<String> {
    let wanted = name.to_lowercase();
    let mut scored: Vec<(bool, usize, &String)> = tappable
        .iter()
        .map(|cand| {
            let c = cand.to_lowercase();
            let related = c.contains(&wanted) || wanted.contains(&c);
            (!related, edit_distance(&wanted, &c), cand)
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(MAX_CANDIDATES)
        .map(|(_, _, c)| c.clone())
        .collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Dim;
    use crate::onnx::builder::{attr_int, value_info, GraphBuilder};

    fn batch(n: usize) -> Vec<Dim> {
        vec![Dim::Dynamic("batch".into()), Dim::Fixed(n)]
    }

    /// x -> Gemm(hidden_pre) -> Relu(hidden) -> Gemm(logits); ids -> Gather(table) -> emb;
    /// hidden -> ArgMax(best).
    fn model() -> ModelProto {
        let mut b = GraphBuilder::new("g");
        b.input("x", DType::F32, &batch(2));
        b.input("ids", DType::I64, &batch(3));
        b.initializer_f32("w1", &[4, 2], &[0.0; 8]);
        b.initializer_f32("w2", &[1, 4], &[0.0; 4]);
        b.initializer_f32("table", &[5, 2], &[0.0; 10]);
        b.node(
            "Gemm",
            &["x", "w1"],
            &["hidden_pre"],
            vec![attr_int("transB", 1)],
        );
        b.node("Relu", &["hidden_pre"], &["hidden"], vec![]);
        b.node(
            "Gemm",
            &["hidden", "w2"],
            &["logits"],
            vec![attr_int("transB", 1)],
        );
        b.node("Gather", &["table", "ids"], &["emb"], vec![]);
        b.node("ArgMax", &["hidden"], &["best"], vec![attr_int("axis", 1)]);
        b.output("logits", DType::F32, &batch(1));
        b.finish()
    }

    #[test]
    fn tappable_lists_inner_node_outputs_only() {
        assert_eq!(
            tappable_tensors(&model()),
            vec!["hidden_pre", "hidden", "emb", "best"]
        );
    }

    #[test]
    fn parses_tap_specs() {
        let t: Tap = "/fc1/Relu_output_0:f32".parse().unwrap();
        assert_eq!(t.tensor, "/fc1/Relu_output_0");
        assert_eq!(t.dtype, Some(DType::F32));
        let t: Tap = "dense/BiasAdd:0".parse().unwrap();
        assert_eq!(t, Tap::new("dense/BiasAdd:0"));
        let t: Tap = "ids:int64".parse().unwrap();
        assert_eq!(t.dtype, Some(DType::I64));
        assert_eq!(t.to_string(), "ids:i64");
        let err = ":f32".parse::<Tap>().unwrap_err();
        assert!(matches!(err, OnnxError::InvalidTap { .. }), "{err:?}");
        assert!(err.to_string().contains("empty"), "{err}");
        assert!("".parse::<Tap>().is_err());
    }

    #[test]
    fn taps_become_outputs_with_inferred_or_default_types() {
        let mut m = model();
        let dtypes = add_taps(
            &mut m,
            &[Tap::new("hidden"), Tap::new("emb"), Tap::new("best")],
        )
        .unwrap();
        assert_eq!(dtypes, vec![DType::F32, DType::F32, DType::I64]);
        let outs: Vec<&str> = m
            .graph
            .as_ref()
            .unwrap()
            .output
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        assert_eq!(outs, vec!["logits", "hidden", "emb", "best"]);
    }

    #[test]
    fn declared_value_info_wins_and_gets_a_batch_axis() {
        let mut m = model();
        let g = m.graph.as_mut().unwrap();
        g.value_info.push(value_info(
            "hidden",
            DType::F64,
            Some(&[Dim::Fixed(1), Dim::Fixed(4)]),
        ));
        let err = add_taps(&mut m, &["hidden:f32".parse().unwrap()]).unwrap_err();
        assert!(matches!(err, OnnxError::DTypeConflict { .. }), "{err:?}");
        assert_eq!(
            m.graph.as_ref().unwrap().output.len(),
            1,
            "untouched on error"
        );

        let dtypes = add_taps(&mut m, &[Tap::new("hidden")]).unwrap();
        assert_eq!(dtypes, vec![DType::F64]);
        let out = &m.graph.as_ref().unwrap().output[1];
        let Some(type_proto::Value::TensorType(t)) = &out.r#type.as_ref().unwrap().value else {
            panic!("tap output is not a tensor type");
        };
        let dims: Vec<_> = t
            .shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| d.value.clone())
            .collect();
        assert_eq!(
            dims,
            vec![
                Some(DimValue::DimParam("batch".into())),
                Some(DimValue::DimValue(4))
            ]
        );
    }

    #[test]
    fn explicit_dtype_is_used_when_nothing_is_declared() {
        let mut m = model();
        assert_eq!(
            add_taps(&mut m, &["hidden_pre:f16".parse().unwrap()]).unwrap(),
            vec![DType::F16]
        );
    }

    #[test]
    fn bad_taps_are_rejected_with_names() {
        let mut m = model();
        let err = add_taps(&mut m, &[Tap::new("hiden")]).unwrap_err();
        match &err {
            OnnxError::UnknownTensor { name, candidates } => {
                assert_eq!(name, "hiden");
                assert_eq!(candidates[0], "hidden");
                assert!(candidates.contains(&"hidden_pre".to_string()));
            }
            other => panic!("expected UnknownTensor, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("`hiden`") && msg.contains("hidden"), "{msg}");

        let err = add_taps(&mut m, &[Tap::new("logits")]).unwrap_err();
        assert!(
            matches!(err, OnnxError::AlreadyOutput(ref n) if n == "logits"),
            "{err:?}"
        );
        let err = add_taps(&mut m, &[Tap::new("x")]).unwrap_err();
        assert!(
            matches!(err, OnnxError::UnknownTensor { .. }),
            "inputs are not taps: {err:?}"
        );
        let err = add_taps(&mut m, &[Tap::new("hidden"), Tap::new("hidden")]).unwrap_err();
        assert!(matches!(err, OnnxError::DuplicateTap(_)), "{err:?}");
        assert_eq!(m.graph.as_ref().unwrap().output.len(), 1);
    }

    #[test]
    fn unsupported_element_types_are_named() {
        let mut m = model();
        let g = m.graph.as_mut().unwrap();
        g.node.push(NodeProto {
            op_type: "Cast".into(),
            input: vec!["hidden".into()],
            output: vec!["q".into()],
            attribute: vec![attr_int("to", DataType::Int8 as i64)],
            ..Default::default()
        });
        let err = add_taps(&mut m, &[Tap::new("q")]).unwrap_err();
        assert!(matches!(err, OnnxError::Unsupported(_)), "{err:?}");
        assert!(err.to_string().contains("INT8"), "{err}");
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
