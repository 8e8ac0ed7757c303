fn wrong(count: i32) -> i32 {
    count + 1
}

graphc_macros::graph! {
    graph typed {
        topology = flow;
        engine = sync;
        step a = fn crate::wrong;
    }
}

fn main() {
    let _ = typed::mock(&graphc_runtime::Options::default());
}
