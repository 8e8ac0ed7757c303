/// Not a model: it implements neither `Model` nor `LoadModel`.
pub struct NotAModel;

graphc_macros::graph! {
    graph served {
        router models = model {
            route m = model(new crate::NotAModel);
        }
    }
}

fn main() {
    let _ = served::mock(&graphc_runtime::Options::default());
}
