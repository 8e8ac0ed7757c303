//! A pipeline from a `.graph` file, compiled by build.rs and included here.

use serde_json::{Value, json};

graphc_runtime::include_graph!("orders");

/// The handler the graph names as `crate::total`.
pub fn total(mut body: Value) -> Value {
    let total = body["qty"].as_f64().unwrap_or(0.0) * body["price"].as_f64().unwrap_or(0.0);
    body["total"] = json!(total);
    body
}

fn main() {
    let server = orders::mock(&graphc_runtime::Options::new(env!("CARGO_MANIFEST_DIR"))).expect("the pipeline starts");
    for (qty, price) in [(2, 3.0), (30, 4.5)] {
        let response = server.test("/orders", json!({ "qty": qty, "price": price }));
        println!("{} {}", response.status, String::from_utf8_lossy(&response.body));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_graphs_test_blocks_pass() {
        let server = super::orders::mock(&graphc_runtime::Options::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let outcomes = graphc_runtime::generated::run_tests(&server, &super::orders::tests());
        assert!(outcomes.iter().all(|o| o.failure.is_none()), "{outcomes:?}");
    }
}
