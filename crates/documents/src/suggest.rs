//! "Did you mean": the known name a misspelt one most likely stands for,
//! by edit distance.

/// The name among `names` that `name` is most likely a misspelling of: the
/// same but for case, or at most two edits away (one for short names).
pub(crate) fn closest<'a>(name: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let allowed = if name.chars().count() <= 4 { 1 } else { 2 };
    names
        .map(|candidate| {
            let distance = if candidate.eq_ignore_ascii_case(name) {
                0
            } else {
                edit_distance(&name.to_ascii_lowercase(), &candidate.to_ascii_lowercase())
            };
            (distance, candidate)
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The Levenshtein distance between two strings, counted in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_characters_inserted_removed_or_replaced() {
        assert_eq!(edit_distance("Greeting", "Greeting"), 0);
        assert_eq!(edit_distance("Greeting", "Greting"), 1);
        assert_eq!(edit_distance("Greting", "Greeting"), 1);
        assert_eq!(edit_distance("Greeting", "Greetinx"), 1);
        assert_eq!(edit_distance("Greeting", "Gerething"), 3);
        assert_eq!(edit_distance("ab", "ba"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn closest_allows_case_and_two_edits_one_for_short_names() {
        let names = ["Greeting", "Name", "Port"];
        assert_eq!(closest("greeting", names.into_iter()), Some("Greeting"));
        assert_eq!(closest("Gretin", names.into_iter()), Some("Greeting"));
        assert_eq!(closest("Grtin", names.into_iter()), None);
        assert_eq!(closest("Nme", names.into_iter()), Some("Name"));
        assert_eq!(closest("Nm", names.into_iter()), None);
    }
}
