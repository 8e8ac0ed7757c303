fn wrong(_body: graphc_runtime::__private::Value) -> i32 {
    1
}

graphc_macros::graph! {
    graph returns_wrong {
        topology = flow;
        engine = async;
        step a = fn crate::wrong { respond; }
    }
}

fn main() {
    let _ = returns_wrong::mock(&graphc_runtime::Options::default());
}
