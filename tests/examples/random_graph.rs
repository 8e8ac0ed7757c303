//! Prints a random graph: `cargo run -p graphc-tests --example random_graph -- SEED SIZE`, to
//! read or reproduce what a property test drew.

fn main() {
    let mut args = std::env::args().skip(1);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let size = args.next().and_then(|a| a.parse().ok()).unwrap_or(6);
    print!(
        "{}",
        graphc_tests::random::graph(
            "random",
            seed,
            graphc_tests::random::Limits { remote: true, ..graphc_tests::random::Limits::new(size) }
        )
    );
}
