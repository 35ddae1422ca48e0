//! "Did you mean": the known name a mistyped one most likely meant, for every place a plan or a
//! command line names something that must exist (variables, steps, kinds, output keys).
//!
//! Typos are measured by the optimal string alignment distance (Damerau–Levenshtein without
//! edits of a substring already edited): inserting, deleting or substituting a character, or
//! swapping two adjacent ones, each costs one. A swap is the most common typo (`projcet`,
//! `gatway_role` aside), and plain Levenshtein counts it twice, which put short names out of
//! reach (`ipa` for `iap`).

/// The candidate `name` most likely meant: the nearest one by [`typo_distance`] (the first of
/// equals), when at most a third of `name`'s characters (and at least one) are off, and the
/// edits do not replace a whole name (so `zone` suggests nothing for `region`). `None` when
/// nothing is that close, or `name` is itself a candidate.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = (length / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = typo_distance(name, candidate);
        if distance == 0 {
            return None;
        }
        let close = distance <= limit && distance < length.min(candidate.chars().count());
        if close && best.is_none_or(|(nearest, _)| distance < nearest) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `"did you mean `CANDIDATE`? "` for the [`closest`] candidate, else `""`: ready to put in
/// front of a list of the valid names.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates)
        .map(|candidate| format!("did you mean `{candidate}`? "))
        .unwrap_or_default()
}

/// The optimal string alignment distance between `a` and `b`, over characters: the fewest
/// insertions, deletions, substitutions and swaps of adjacent characters turning one into the
/// other, no substring being edited twice.
pub fn typo_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the (a.len() + 1) × (b.len() + 1) table: a swap looks two rows back.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let substitution = previous[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(previous[j] + 1).min(current[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_of_adjacent_characters_costs_one_edit() {
        assert_eq!(typo_distance("projcet", "project"), 1);
        assert_eq!(typo_distance("ipa", "iap"), 1);
        assert_eq!(typo_distance("regoin", "region"), 1);
        // Optimal string alignment: a swapped pair is not edited again.
        assert_eq!(typo_distance("ca", "abc"), 3);
    }

    #[test]
    fn insertions_deletions_and_substitutions_cost_one_each() {
        assert_eq!(typo_distance("", "abc"), 3);
        assert_eq!(typo_distance("abc", ""), 3);
        assert_eq!(typo_distance("gatway_role", "gateway_role"), 1);
        assert_eq!(typo_distance("kitten", "sitting"), 3);
        assert_eq!(typo_distance("same", "same"), 0);
    }

    #[test]
    fn the_nearest_close_candidate_is_suggested() {
        let declared = ["project", "region", "iap", "role_id"];
        assert_eq!(closest("projcet", declared), Some("project"));
        assert_eq!(closest("ipa", declared), Some("iap"), "short names get one edit");
        assert_eq!(closest("rgion", declared), Some("region"));
        assert_eq!(
            closest("rol_id", ["roles_ids", "role_id"]),
            Some("role_id"),
            "the nearest wins"
        );
        assert_eq!(did_you_mean("projcet", declared), "did you mean `project`? ");
    }

    #[test]
    fn unrelated_or_exact_names_get_no_suggestion() {
        let declared = ["project", "region", "iap", "ab"];
        assert_eq!(closest("zone", declared), None);
        assert_eq!(closest("organization", declared), None);
        assert_eq!(
            closest("x", declared),
            None,
            "a one-character name is never a typo of `ab`"
        );
        assert_eq!(closest("project", declared), None, "nothing to correct");
        assert_eq!(did_you_mean("zone", declared), "");
    }
}
