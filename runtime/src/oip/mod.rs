//! The Open Inference Protocol V2, in one place: its paths, its datatypes, the inference request
//! a model route reads and the answer it writes (`infer`), and the two codecs beside REST's JSON
//! that carry them: the binary tensor extension (`binary`) and gRPC (`grpc`). Routing (which
//! route a path names) and voting stay in the router; what the protocol says lives here.

pub(crate) mod binary;
#[cfg(feature = "grpc")]
pub mod grpc;
pub(crate) mod infer;

use std::fmt;

/// The protocol's paths, spelled once: the router answers them, the gRPC service calls them,
/// the probe port and the bare pipeline answer the health pair.
pub mod paths {
    /// Where the health probes live unless a router says otherwise (`health_prefix`).
    pub const HEALTH: &str = "/v2/health";
    /// The liveness probe.
    pub const LIVE: &str = "/v2/health/live";
    /// The readiness probe.
    pub const READY: &str = "/v2/health/ready";
    /// Server metadata.
    pub const SERVER: &str = "/v2";
    /// Where models are served unless a router says otherwise (`url_prefix`).
    pub const MODELS: &str = "/v2/models";

    /// `{prefix}/live` and `{prefix}/ready`: the health pair under a router's own prefix.
    pub fn health(prefix: &str) -> [String; 2] {
        let prefix = prefix.trim_end_matches('/');
        [format!("{prefix}/live"), format!("{prefix}/ready")]
    }

    /// `/v2/models/{name}[/versions/{version}]{suffix}`, for a model named in a call rather
    /// than a path.
    pub fn model(name: &str, version: Option<&str>, suffix: &str) -> String {
        match version {
            None => format!("{MODELS}/{name}{suffix}"),
            Some(version) => format!("{MODELS}/{name}/versions/{version}{suffix}"),
        }
    }
}

/// The server's metadata (`GET /v2`): its name, graphc's version, and the protocol extensions
/// it speaks beyond the core (none it announces: the binary extension needs no asking).
pub(crate) fn server_metadata(name: &str) -> serde_json::Value {
    serde_json::json!({ "name": name, "version": env!("CARGO_PKG_VERSION"), "extensions": [] })
}

/// A tensor's element type, as the protocol names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datatype {
    /// true or false, one byte in binary.
    Bool,
    /// Unsigned 8-bit integers.
    Uint8,
    /// Unsigned 16-bit integers.
    Uint16,
    /// Unsigned 32-bit integers.
    Uint32,
    /// Unsigned 64-bit integers.
    Uint64,
    /// Signed 8-bit integers.
    Int8,
    /// Signed 16-bit integers.
    Int16,
    /// Signed 32-bit integers.
    Int32,
    /// Signed 64-bit integers.
    Int64,
    /// IEEE half precision.
    Fp16,
    /// IEEE single precision.
    Fp32,
    /// IEEE double precision.
    Fp64,
    /// Byte strings, each with a 4-byte length in binary.
    Bytes,
}

impl Datatype {
    /// Every datatype, in the order the protocol lists them.
    pub const ALL: [Datatype; 13] = [
        Datatype::Bool,
        Datatype::Uint8,
        Datatype::Uint16,
        Datatype::Uint32,
        Datatype::Uint64,
        Datatype::Int8,
        Datatype::Int16,
        Datatype::Int32,
        Datatype::Int64,
        Datatype::Fp16,
        Datatype::Fp32,
        Datatype::Fp64,
        Datatype::Bytes,
    ];

    /// The datatype the protocol spells `text`, if it defines one.
    pub fn parse(text: &str) -> Option<Datatype> {
        Datatype::ALL.into_iter().find(|datatype| datatype.as_str() == text)
    }

    /// How the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request said its datatype was, when the protocol defines no such type.
#[derive(Debug, thiserror::Error)]
#[error(
    "the datatype `{0}` is not one the protocol defines: use BOOL, BYTES, FP16, FP32, FP64, INT8..INT64 or \
     UINT8..UINT64"
)]
pub struct UnknownDatatype(pub String);

impl std::str::FromStr for Datatype {
    type Err = UnknownDatatype;

    fn from_str(text: &str) -> Result<Datatype, UnknownDatatype> {
        Datatype::parse(text).ok_or_else(|| UnknownDatatype(text.to_string()))
    }
}

impl serde::Serialize for Datatype {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Datatype {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Datatype, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datatype_reads_back_from_its_spelling() {
        for datatype in Datatype::ALL {
            assert_eq!(Datatype::parse(datatype.as_str()), Some(datatype));
        }
        assert_eq!(Datatype::parse("fp32"), None, "the protocol's names are upper case");
        assert!("FLOAT".parse::<Datatype>().unwrap_err().to_string().contains("`FLOAT`"));
    }

    #[test]
    fn model_paths_are_built_from_the_one_prefix() {
        assert_eq!(paths::model("m", None, "/infer"), "/v2/models/m/infer");
        assert_eq!(paths::model("m", Some("2"), ""), "/v2/models/m/versions/2");
        assert_eq!(paths::health("/h/"), ["/h/live", "/h/ready"]);
        assert_eq!(paths::health(paths::HEALTH), [paths::LIVE, paths::READY]);
    }
}
