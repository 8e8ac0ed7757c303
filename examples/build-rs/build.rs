//! Compiles pipeline.graph into OUT_DIR; src/main.rs includes it with `include_graph!`.

fn main() {
    if let Err(error) = graphc::Builder::new().compile("pipeline.graph") {
        eprintln!("{error}");
        std::process::exit(1);
    }
}
