//! ONNX model files as `graphc check` reads them: the signature (inputs and outputs with their
//! element types and shapes) and the operators, decoded from the file's bytes with a few of
//! ONNX's protobuf messages (prost skips the fields it is not given: the weights are never
//! copied). Pure: the caller reads the file ([`crate::surroundings`]), as the core does no IO.
//! What this module accepts is what the runtime's `OnnxModel` loads (runtime/src/model/onnx.rs):
//! each input and output a tensor whose first dimension is the rows and the rest fixed, inputs of
//! numbers, every operator one tract runs, and scikit-learn's `ZipMap` served as the tensor of
//! probabilities it wraps.

use std::fmt;

/// The operators the runtime's tract (graphc-runtime's `onnx` feature, tract-onnx 0.23 without
/// its transformer operators) runs, by `op_type`, sorted; `ZipMap` is served by the runtime
/// itself. graphc-tests holds this list equal to tract's own register.
pub const OPERATORS: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "ArrayFeatureExtractor",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "BiasGelu",
    "BitShift",
    "BitwiseAnd",
    "BitwiseNot",
    "BitwiseOr",
    "BitwiseXor",
    "BlackmanWindow",
    "Cast",
    "CastLike",
    "CategoryMapper",
    "Ceil",
    "Celu",
    "Clip",
    "Compress",
    "Concat",
    "Constant",
    "ConstantLike",
    "ConstantOfShape",
    "Conv",
    "ConvInteger",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DFT",
    "DepthToSpace",
    "DequantizeLinear",
    "Div",
    "Dropout",
    "DynamicQuantizeLinear",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "FastGelu",
    "Flatten",
    "Floor",
    "GRU",
    "Gather",
    "GatherBlockQuantized",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalLpPool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "GridSample",
    "GroupNormalization",
    "HammingWindow",
    "HannWindow",
    "HardSigmoid",
    "HardSwish",
    "Hardmax",
    "Identity",
    "If",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LRN",
    "LSTM",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "LinearClassifier",
    "LinearRegressor",
    "Log",
    "LogSoftmax",
    "LpNormalization",
    "MatMul",
    "MatMulInteger",
    "MatMulNBits",
    "Max",
    "MaxPool",
    "Mean",
    "MeanVarianceNormalization",
    "MelWeightMatrix",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Multinomial",
    "Neg",
    "NonMaxSuppression",
    "NonZero",
    "Normalizer",
    "Not",
    "OneHot",
    "Or",
    "PRelu",
    "Pad",
    "ParametricSoftplus",
    "Pow",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
    "QuickGelu",
    "RMSNormalization",
    "RNN",
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
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
    "RotaryEmbedding",
    "Round",
    "Rsqrt",
    "STFT",
    "ScaledTanh",
    "Scan",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "SimplifiedLayerNormalization",
    "Sin",
    "Sinh",
    "Size",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Swish",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "TreeEnsembleClassifier",
    "Trilu",
    "Unsqueeze",
    "Where",
    "Xor",
];

/// The few of ONNX's protobuf messages `graphc check` reads (onnx/onnx.proto, same tags).
#[allow(missing_docs, reason = "each field is ONNX's, as onnx.proto names and documents it")]
pub mod proto {
    /// A model file.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        #[prost(string, tag = "2")]
        pub producer_name: String,
        #[prost(string, tag = "3")]
        pub producer_version: String,
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
    }

    /// An operator set the model imports.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        #[prost(string, tag = "1")]
        pub domain: String,
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// The model's graph.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        #[prost(string, tag = "2")]
        pub name: String,
        /// Only names are read: an input that is initialised is a weight, not an input.
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
    }

    /// A weight: its name alone.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        #[prost(string, tag = "8")]
        pub name: String,
    }

    /// One operator of the graph.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        #[prost(string, tag = "3")]
        pub name: String,
        #[prost(string, tag = "4")]
        pub op_type: String,
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    /// An operator's attribute: the lists `ZipMap`'s class labels are in.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int64, repeated, tag = "8")]
        pub ints: Vec<i64>,
        #[prost(bytes = "vec", repeated, tag = "9")]
        pub strings: Vec<Vec<u8>>,
    }

    /// A named value of the graph: an input or an output.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// A value's type: a tensor, or (what graphc does not serve) a sequence or a map.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
        #[prost(message, optional, tag = "4")]
        pub sequence_type: Option<Nothing>,
        #[prost(message, optional, tag = "5")]
        pub map_type: Option<Nothing>,
    }

    /// A message whose contents are not read.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Nothing {}

    /// A tensor's element type (`TensorProto.DataType`) and shape.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto {
        #[prost(int32, tag = "1")]
        pub elem_type: i32,
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// A shape: its dimensions.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// A dimension: a size, a name (a size that varies), or neither (varies, unnamed).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

/// A tensor's element type, as ONNX numbers them (`TensorProto.DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    /// `float`
    Float,
    /// `uint8`
    Uint8,
    /// `int8`
    Int8,
    /// `uint16`
    Uint16,
    /// `int16`
    Int16,
    /// `int32`
    Int32,
    /// `int64`
    Int64,
    /// `string`
    Text,
    /// `bool`
    Bool,
    /// `float16`
    Float16,
    /// `double`
    Double,
    /// `uint32`
    Uint32,
    /// `uint64`
    Uint64,
    /// Another (complex numbers, bfloat16, float8): named by its number.
    Other(i32),
}

/// Each element type: ONNX's number for it, and the Open Inference Protocol's name.
const ELEMENTS: [(i32, Element, &str); 13] = [
    (1, Element::Float, "FP32"),
    (2, Element::Uint8, "UINT8"),
    (3, Element::Int8, "INT8"),
    (4, Element::Uint16, "UINT16"),
    (5, Element::Int16, "INT16"),
    (6, Element::Int32, "INT32"),
    (7, Element::Int64, "INT64"),
    (8, Element::Text, "BYTES"),
    (9, Element::Bool, "BOOL"),
    (10, Element::Float16, "FP16"),
    (11, Element::Double, "FP64"),
    (12, Element::Uint32, "UINT32"),
    (13, Element::Uint64, "UINT64"),
];

impl Element {
    fn from_number(number: i32) -> Element {
        ELEMENTS.iter().find(|(n, ..)| *n == number).map_or(Element::Other(number), |(_, element, _)| *element)
    }

    /// The Open Inference Protocol's name of the type, as the served model's metadata says it.
    pub fn datatype(self) -> String {
        match ELEMENTS.iter().find(|(_, element, _)| *element == self) {
            Some((.., name)) => (*name).to_string(),
            None => format!(
                "ONNX type {}",
                match self {
                    Element::Other(number) => number,
                    _ => 0,
                }
            ),
        }
    }

    /// Whether a request's numbers can fill it.
    pub fn is_number(self) -> bool {
        !matches!(self, Element::Text | Element::Other(_))
    }
}

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(u64),
    /// A size that varies, named (`N`) or not.
    Varies(Option<String>),
}

/// What one input or output of the model is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Port {
    /// A tensor.
    Tensor {
        /// Its element type.
        element: Element,
        /// Its shape; `None` when the file declares none.
        shape: Option<Vec<Dim>>,
    },
    /// A sequence or a map (what tract cannot hold).
    Other,
}

/// A named input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// Its name in the file: a request's input names it, an answer's output is named by it.
    pub name: String,
    /// What it is.
    pub port: Port,
}

impl Value {
    /// Values per row: the product of the dimensions after the rows, when all are fixed.
    pub fn width(&self) -> Option<u64> {
        match &self.port {
            Port::Tensor { shape: Some(shape), .. } if !shape.is_empty() => {
                shape.iter().skip(1).try_fold(1u64, |width, dim| match dim {
                    Dim::Fixed(size) => width.checked_mul(*size),
                    Dim::Varies(_) => None,
                })
            }
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// `features` (FP32 [-1, 4]): as the metadata endpoint says it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.port {
            Port::Tensor { element, shape } => {
                let dims: Vec<String> = shape
                    .iter()
                    .flatten()
                    .map(|dim| match dim {
                        Dim::Fixed(size) => size.to_string(),
                        Dim::Varies(_) => "-1".to_string(),
                    })
                    .collect();
                write!(f, "`{}` ({} [{}])", self.name, element.datatype(), dims.join(", "))
            }
            Port::Other => write!(f, "`{}` (a sequence or a map)", self.name),
        }
    }
}

/// One operator the graph uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Its domain (`ai.onnx.ml`), empty for ONNX's own.
    pub domain: String,
    /// Its name.
    pub op_type: String,
}

/// What a model file says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Its inputs, weights left out, in the file's order (a request's rows are read in it).
    pub inputs: Vec<Value>,
    /// Its outputs, a `ZipMap`'s as the tensor it wraps.
    pub outputs: Vec<Value>,
    /// Every operator, once each, in the order first used.
    pub operators: Vec<Operator>,
    /// What made the file (`skl2onnx 1.20.0`), when it says.
    pub producer: Option<String>,
}

/// Why a file is not an ONNX model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The bytes do not decode as a model.
    #[error("not an ONNX model: {0}")]
    Decode(String),
    /// It decodes, but holds no graph.
    #[error("the file holds no graph: not an ONNX model")]
    NoGraph,
}

impl Signature {
    /// Reads a model file's bytes.
    pub fn read(bytes: &[u8]) -> Result<Signature, ReadError> {
        use prost::Message;
        let model = proto::ModelProto::decode(bytes).map_err(|error| ReadError::Decode(error.to_string()))?;
        let graph = model.graph.ok_or(ReadError::NoGraph)?;
        if graph.node.is_empty() && graph.input.is_empty() && graph.output.is_empty() {
            return Err(ReadError::NoGraph);
        }
        let initialised: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph.input.iter().filter(|input| !initialised.contains(input.name.as_str())).map(value).collect();
        let zip_maps: Vec<(&str, usize)> = graph
            .node
            .iter()
            .filter(|node| node.op_type == "ZipMap")
            .map(|node| {
                let classes = node.attribute.iter().map(|a| a.ints.len().max(a.strings.len())).max().unwrap_or(0);
                (node.output.first().map_or("", String::as_str), classes)
            })
            .collect();
        let outputs = graph
            .output
            .iter()
            .map(|output| match zip_maps.iter().find(|(name, _)| *name == output.name) {
                Some((_, classes)) => Value {
                    name: output.name.clone(),
                    port: Port::Tensor {
                        element: Element::Float,
                        shape: Some(vec![Dim::Varies(None), Dim::Fixed(*classes as u64)]),
                    },
                },
                None => value(output),
            })
            .collect();
        let mut operators: Vec<Operator> = Vec::new();
        for node in &graph.node {
            if !operators.iter().any(|op| op.op_type == node.op_type && op.domain == node.domain) {
                operators.push(Operator { domain: node.domain.clone(), op_type: node.op_type.clone() });
            }
        }
        let producer = (!model.producer_name.is_empty())
            .then(|| format!("{} {}", model.producer_name, model.producer_version).trim().to_string());
        Ok(Signature { inputs, outputs, operators, producer })
    }

    /// The operators the runtime cannot run, each once.
    pub fn unsupported(&self) -> Vec<&Operator> {
        self.operators
            .iter()
            .filter(|op| op.op_type != "ZipMap" && OPERATORS.binary_search(&op.op_type.as_str()).is_err())
            .collect()
    }

    /// Values per row over every input, when each input's is fixed.
    pub fn width(&self) -> Option<u64> {
        self.inputs.iter().try_fold(0u64, |total, input| input.width().and_then(|w| total.checked_add(w)))
    }

    /// What the model takes, as a request must send it: "`features` (FP32 [-1, 4])".
    pub fn describe_inputs(&self) -> String {
        let inputs: Vec<String> = self.inputs.iter().map(ToString::to_string).collect();
        inputs.join(", ")
    }
}

fn value(info: &proto::ValueInfoProto) -> Value {
    let port = match info.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) {
        Some(tensor) => Port::Tensor {
            element: Element::from_number(tensor.elem_type),
            shape: tensor.shape.as_ref().map(|shape| {
                shape
                    .dim
                    .iter()
                    .map(|dim| match (dim.dim_value, &dim.dim_param) {
                        (Some(size), _) if size > 0 => Dim::Fixed(size.unsigned_abs()),
                        (_, param) => Dim::Varies(param.clone().filter(|p| !p.is_empty())),
                    })
                    .collect()
            }),
        },
        None => Port::Other,
    };
    Value { name: info.name.clone(), port }
}
