//! The editor setups in editors/ as their editors read them: Helix's languages.toml (a language
//! with the scope, file type and server Helix needs, and the server's own table), the VS Code
//! extension's manifest (what a published extension must have), and Neovim's setup naming the
//! filetype and the server.

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

#[test]
fn helix_gets_a_language_with_its_scope_and_a_server_table() {
    let config: toml::Table = read("editors/helix/languages.toml").parse().expect("valid TOML");
    let languages = config["language"].as_array().expect("[[language]]");
    let graph = languages.iter().find(|l| l["name"].as_str() == Some("graph")).expect("the graph language");
    assert_eq!(graph["scope"].as_str(), Some("source.graph"), "Helix needs a scope");
    assert_eq!(graph["file-types"].as_array().map(Vec::len), Some(1));
    assert_eq!(graph["file-types"][0].as_str(), Some("graph"));
    assert_eq!(graph["language-servers"][0].as_str(), Some("graphc"));
    let server = &config["language-server"]["graphc"];
    assert_eq!(server["command"].as_str(), Some("graphc"));
    assert_eq!(server["args"][0].as_str(), Some("lsp"));
    assert_eq!(graph["formatter"]["args"][0].as_str(), Some("fmt"));
}

#[test]
fn the_vscode_extension_has_what_publishing_needs_and_neovim_registers_the_filetype() {
    let manifest: serde_json::Value = serde_json::from_str(&read("editors/vscode/package.json")).expect("JSON");
    for field in ["name", "publisher", "version", "license", "repository", "engines"] {
        assert!(!manifest[field].is_null(), "package.json has no `{field}`");
    }
    assert!(read("editors/vscode/LICENSE").contains("MIT"));
    assert!(read("editors/vscode/.gitignore").contains("node_modules"));
    let neovim = read("editors/neovim/graphc.lua");
    assert!(neovim.contains("vim.filetype.add({ extension = { graph = \"graph\" } })"), "{neovim}");
    assert!(neovim.contains("cmd = { \"graphc\", \"lsp\" }"), "{neovim}");
}
