//! What a graph needs of this build: one macro per optional feature, which generated code
//! invokes for each feature its graph uses (`ir::RuntimeFeature`, decided by the checker). With
//! the feature built in it expands to nothing; without it, to one compile error saying which
//! feature to enable, in place of rustc's errors about names that are not there.

/// Nothing: this build has the `models` feature.
#[cfg(feature = "models")]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_models {
    () => {};
}

/// A compile error: this build lacks the `models` feature.
#[cfg(not(feature = "models"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_models {
    () => {
        ::core::compile_error!(
            "this graph serves smartcore models (`model(kind = ...)`): enable graphc-runtime's `models` feature"
        );
    };
}

/// Nothing: this build has the `onnx` feature.
#[cfg(feature = "onnx")]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_onnx {
    () => {};
}

/// A compile error: this build lacks the `onnx` feature.
#[cfg(not(feature = "onnx"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_onnx {
    () => {
        ::core::compile_error!(
            "this graph serves ONNX models (`model(kind = onnx, ...)`): enable graphc-runtime's `onnx` feature"
        );
    };
}

/// Nothing: this build has the `remote` feature.
#[cfg(feature = "remote")]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_remote {
    () => {};
}

/// A compile error: this build lacks the `remote` feature.
#[cfg(not(feature = "remote"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_remote {
    () => {
        ::core::compile_error!("this graph calls `$remote` steps: enable graphc-runtime's `remote` feature");
    };
}

/// Nothing: this build has the `streams` feature.
#[cfg(feature = "streams")]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_streams {
    () => {};
}

/// A compile error: this build lacks the `streams` feature.
#[cfg(not(feature = "streams"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_streams {
    () => {
        ::core::compile_error!("this graph uses Redis streams (stream queues, stream triggers, answers or error streams): enable graphc-runtime's `streams` feature");
    };
}

/// Nothing: this build has the `schedule` feature.
#[cfg(feature = "schedule")]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_schedule {
    () => {};
}

/// A compile error: this build lacks the `schedule` feature.
#[cfg(not(feature = "schedule"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __graphc_require_schedule {
    () => {
        ::core::compile_error!("this graph has cron schedules: enable graphc-runtime's `schedule` feature");
    };
}
