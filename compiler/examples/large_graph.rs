//! Prints a large graph of one shape, for measuring `graphc check` on it:
//! `cargo run --release -p graphc --example large_graph -- chain 100000 > chain.graph`.

#[path = "../benches/support/shapes.rs"]
mod shapes;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps = args.get(1).and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0);
    let text = match (args.first().map(String::as_str), steps) {
        (Some("chain"), Some(n)) => shapes::generated_flow(n),
        (Some("fan_out"), Some(n)) => shapes::fan_out(n),
        (Some("lattice"), Some(n)) => shapes::lattice(n),
        (Some("many_diagnostics"), Some(n)) => shapes::many_diagnostics(n),
        _ => {
            eprintln!("usage: large_graph chain|fan_out|lattice|many_diagnostics STEPS");
            return std::process::ExitCode::from(2);
        }
    };
    print!("{text}");
    std::process::ExitCode::SUCCESS
}
