fn wrong(_order: String) -> Result<i64, String> {
    Ok(1)
}

graphc_macros::graph! {
    graph typed_wrong {
        topology = flow;
        engine = sync;
        record Order { id: str, qty: int }
        step a: Order -> int = fn crate::wrong;
    }
}

fn main() {
    let _ = typed_wrong::mock(&graphc_runtime::Options::default());
}
