//! A pipeline written inline: the same language as a `.graph` file, checked at compile time.

use serde_json::json;

graphc_macros::graph! {
    graph greeter {
        topology = flow;
        engine = sync;
        param greeting: str = "hello";

        step pick = choice {
            len(body.name) > 0 => greet,
            _ => anonymous,
        };
        step greet = map({ message: param.greeting + ", " + body.name });
        step anonymous = map({ message: param.greeting + ", whoever you are" });
    }
}

fn main() {
    let server = greeter::mock(&graphc_runtime::Options::default().param("greeting", json!("hi"))).expect("starts");
    for name in ["Ada", ""] {
        println!("{}", String::from_utf8_lossy(&server.test("/", json!({ "name": name })).body));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn greets_by_name_or_not() {
        let server = super::greeter::mock(&graphc_runtime::Options::default()).unwrap();
        assert_eq!(server.test("/", json!({ "name": "Ada" })).json_body(), json!({ "message": "hello, Ada" }));
        assert_eq!(server.test("/", json!({ "name": "" })).json_body(), json!({ "message": "hello, whoever you are" }));
    }
}
