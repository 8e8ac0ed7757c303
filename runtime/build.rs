//! With the `grpc` feature, compiles the Open Inference Protocol's service definition
//! (proto/grpc_service.proto) with tonic, using a vendored protoc: nothing to install.

fn main() {
    println!("cargo:rerun-if-changed=proto/grpc_service.proto");
    #[cfg(feature = "grpc")]
    {
        let protoc =
            protoc_bin_vendored::protoc_bin_path().expect("protoc-bin-vendored has a protoc for this platform");
        // SAFETY: a build script is single-threaded; tonic-prost-build reads PROTOC.
        unsafe { std::env::set_var("PROTOC", protoc) };
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_protos(&["proto/grpc_service.proto"], &["proto"])
            .expect("the protocol's proto compiles");
    }
}
