//! Image references (`repo:tag`): splitting them the way the engines do.

/// Splits `reference` into repository and tag at the last `:` after the last
/// `/` (so a registry port is not mistaken for a tag); no tag means `latest`.
pub(crate) fn split_reference(reference: &str) -> (&str, &str) {
    let name_start = reference.rfind('/').map_or(0, |slash| slash + 1);
    match reference[name_start..].rfind(':') {
        Some(colon) => {
            let colon = name_start + colon;
            (&reference[..colon], &reference[colon + 1..])
        }
        None => (reference, "latest"),
    }
}

/// The reference with its tag made explicit (`name` becomes `name:latest`).
pub(crate) fn normalize_reference(reference: &str) -> String {
    let (repo, tag) = split_reference(reference);
    format!("{repo}:{tag}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_tag_not_the_registry_port() {
        assert_eq!(split_reference("localhost/app:1.2"), ("localhost/app", "1.2"));
        assert_eq!(split_reference("registry:5000/app:v1"), ("registry:5000/app", "v1"));
        assert_eq!(split_reference("registry:5000/app"), ("registry:5000/app", "latest"));
        assert_eq!(split_reference("app"), ("app", "latest"));
        assert_eq!(normalize_reference("localhost/app"), "localhost/app:latest");
    }
}
