//! graphc-runtime: what generated pipelines and users depend on. The executors, routers and
//! models arrive with the runtime issue; this crate is the workspace's place for them.
#![deny(missing_docs)]
