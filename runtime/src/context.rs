//! The context every step can reach: parameters, secrets, store resources, remote endpoints,
//! logging, and where failures are recorded.

use crate::error::{ErrorStream, StepError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Shared by all events of a pipeline; built once at start-up.
pub struct Context {
    /// True in verbose (debug) mode.
    pub verbose: bool,
    /// A 5xx failure's cause goes to the caller too, not only to the log (`--expose-errors`).
    pub expose_errors: bool,
    /// The graph's name and description.
    pub root: String,
    /// The function this process runs (`None` for the root function).
    pub current_function: Option<String>,
    params: HashMap<String, Value>,
    secrets: Secrets,
    store_dir: Option<PathBuf>,
    endpoints: HashMap<String, String>,
    error_stream: Option<Arc<dyn ErrorStream>>,
}

/// Where secrets come from: the environment, then a secrets file of `NAME=value` lines. Values
/// are never logged, and `Debug` does not show them.
#[derive(Default)]
struct Secrets {
    allowed: Option<Vec<String>>,
    file: HashMap<String, String>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("root", &self.root)
            .field("current_function", &self.current_function)
            .field("params", &self.params)
            .field("secrets", &"<hidden>")
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for the graph named `root`, with nothing configured.
    pub fn new(root: impl Into<String>) -> Self {
        Context {
            verbose: false,
            expose_errors: false,
            root: root.into(),
            current_function: None,
            params: HashMap::new(),
            secrets: Secrets::default(),
            store_dir: None,
            endpoints: HashMap::new(),
            error_stream: None,
        }
    }

    /// Sets a parameter.
    pub fn with_param(mut self, key: impl Into<String>, value: Value) -> Self {
        self.params.insert(key.into(), value);
        self
    }

    /// Limits `get_secret` to these names (the graph's declared secrets).
    pub fn with_allowed_secrets(mut self, names: &[&str]) -> Self {
        self.secrets.allowed = Some(names.iter().map(|n| n.to_string()).collect());
        self
    }

    /// Reads a secrets file of `NAME=value` lines (`#` starts a comment).
    pub fn with_secrets_file(mut self, path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            if let Some((name, value)) = line.split_once('=') {
                self.secrets.file.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        Ok(self)
    }

    /// Sets the directory `get_store_resource` reads from.
    pub fn with_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// Maps a function name to its HTTP endpoint, for `get_remote_endpoint`.
    pub fn with_endpoint(mut self, function: impl Into<String>, url: impl Into<String>) -> Self {
        self.endpoints.insert(function.into(), url.into());
        self
    }

    /// Records failures in this stream.
    pub fn with_error_stream(mut self, stream: Arc<dyn ErrorStream>) -> Self {
        self.error_stream = Some(stream);
        self
    }

    /// Sets the function this process runs.
    pub fn with_function(mut self, function: impl Into<String>) -> Self {
        self.current_function = Some(function.into());
        self
    }

    /// Sets verbose mode.
    pub fn with_verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// A parameter as the type asked for; `None` when missing or of another type.
    ///
    /// ```
    /// # use graphc_runtime::Context;
    /// let context = Context::new("g").with_param("threshold", serde_json::json!(0.5));
    /// assert_eq!(context.get_param::<f64>("threshold"), Some(0.5));
    /// assert_eq!(context.get_param::<String>("threshold"), None);
    /// ```
    pub fn get_param<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.params.get(key).and_then(|value| T::deserialize(value).ok())
    }

    /// A parameter, or `default` when missing or of another type.
    pub fn get_param_or<T: DeserializeOwned>(&self, key: &str, default: T) -> T {
        self.get_param(key).unwrap_or(default)
    }

    /// A secret: from the environment, else from the secrets file. Names the graph does not
    /// declare are refused.
    pub fn get_secret(&self, key: &str) -> Option<String> {
        if let Some(allowed) = &self.secrets.allowed
            && !allowed.iter().any(|name| name == key)
        {
            tracing::warn!(secret = key, "a step asked for a secret the graph does not declare");
            return None;
        }
        std::env::var(key).ok().or_else(|| self.secrets.file.get(key).cloned())
    }

    /// `text` with the value of every secret the graph declares replaced by `***` (and
    /// credentials in URLs, as [`crate::error::redact_credentials`]): what a log line may show.
    /// Values shorter than four characters are left, since they would mark ordinary text.
    pub fn redact<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        let mut redacted = crate::error::redact_credentials(text);
        for name in self.secrets.allowed.iter().flatten() {
            let value = std::env::var(name).ok().or_else(|| self.secrets.file.get(name).cloned());
            if let Some(value) = value.filter(|value| value.len() >= 4)
                && redacted.contains(value.as_str())
            {
                redacted = std::borrow::Cow::Owned(redacted.replace(value.as_str(), "***"));
            }
        }
        redacted
    }

    /// Reads an artifact from the store directory. `uri` is `store://relative/path` or a
    /// relative path; paths leaving the store are refused.
    pub fn get_store_resource(&self, uri: &str) -> Result<Vec<u8>, StepError> {
        let dir = self.store_dir.as_ref().ok_or_else(|| StepError::new("no store directory is configured"))?;
        let relative = Path::new(uri.strip_prefix("store://").unwrap_or(uri));
        if relative.is_absolute() || relative.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
            return Err(StepError::bad_request(format!("store resource `{uri}` is outside the store")));
        }
        std::fs::read(dir.join(relative))
            .map_err(|error| StepError::not_found(format!("store resource `{uri}`: {error}")))
    }

    /// The HTTP endpoint of another function.
    pub fn get_remote_endpoint(&self, function: &str) -> Option<&str> {
        self.endpoints.get(function).map(String::as_str)
    }

    /// The error stream, if one is configured.
    pub fn error_stream(&self) -> Option<&dyn ErrorStream> {
        self.error_stream.as_deref()
    }

    /// The name of the function this process runs, for records and logs.
    pub fn function_name(&self) -> &str {
        self.current_function.as_deref().unwrap_or(&self.root)
    }
}
