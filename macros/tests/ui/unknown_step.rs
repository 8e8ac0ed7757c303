graphc_macros::graph! {
    graph typo {
        topology = flow;
        step enrich = map(body);
        step score = map(body) { respond; }
        enrch -> score;
    }
}

fn main() {
    let _ = typo::mock(&graphc_runtime::Options::default());
}
