//! Values checked where they are written, by the rules the runtime will apply to them: URLs
//! (scheme, host, port) and HTTP header names and values. A value that can never work is a
//! diagnostic at its string, not an error on every call.

/// Why `url` is not a URL the runtime can use with one of `schemes`: a known scheme, a host, and
/// a port from 1 to 65535 when one is written.
pub(super) fn check_url(url: &str, schemes: &[&str]) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("`{url}` has no scheme: write {}://host...", schemes.first().copied().unwrap_or("http")));
    };
    if !schemes.contains(&scheme) {
        let expected: Vec<String> = schemes.iter().map(|scheme| format!("{scheme}://")).collect();
        return Err(format!("`{scheme}://` is not {}", expected.join(" or ")));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = match host_and_port.strip_prefix('[') {
        // An IPv6 address: `[::1]:8080`.
        Some(bracketed) => {
            let (address, after) =
                bracketed.split_once(']').ok_or_else(|| format!("`{url}` opens `[` and never closes it"))?;
            (address, after.strip_prefix(':'))
        }
        None => match host_and_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_and_port, None),
        },
    };
    if host.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    if let Some(bad) = host.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the host of `{url}` holds {bad:?}"));
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(1..=65_535) => {}
            _ if port.is_empty() => return Err(format!("`{url}` has a `:` and no port after it")),
            _ => return Err(format!("`{port}` is not a port (1 to 65535)")),
        }
    }
    Ok(())
}

/// Why `name` is not an HTTP header name (RFC 9110's token: letters, digits and
/// ``!#$%&'*+-.^_`|~``).
pub(super) fn check_header_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a header name cannot be empty".to_string());
    }
    match name.chars().find(|c| !(c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c))) {
        Some(bad) => Err(format!("a header name cannot hold {bad:?}")),
        None => Ok(()),
    }
}

/// Why `value` is not an HTTP header value (no line breaks or other control characters but tab).
pub(super) fn check_header_value(value: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control() && *c != '\t') {
        Some(bad) => Err(format!("a header value cannot hold {bad:?}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_the_runtime_can_use() {
        for url in
            ["http://scorer:8080/v2/models/m/infer", "http://127.0.0.1/x", "http://[::1]:9000/", "http://u:p@h:1"]
        {
            assert_eq!(check_url(url, &["http"]), Ok(()), "{url}");
        }
        for (url, why) in [
            ("http:///path", "names no host"),
            ("http://host:70000/", "not a port"),
            ("http://host:/", "no port after it"),
            ("https://host/", "is not http://"),
            ("host:8080", "has no scheme"),
            ("http://ho st/", "holds"),
            ("http://[::1/", "never closes"),
        ] {
            let error = check_url(url, &["http"]).err().unwrap_or_default();
            assert!(error.contains(why), "{url}: {error}");
        }
    }

    #[test]
    fn header_names_are_tokens_and_values_have_no_line_breaks() {
        assert_eq!(check_header_name("x-api-key"), Ok(()));
        assert!(check_header_name("x api key").is_err());
        assert!(check_header_name("").is_err());
        assert_eq!(check_header_value("Bearer abc\tdef"), Ok(()));
        assert!(check_header_value("abc\r\nx-injected: 1").is_err());
    }
}
