//! Which tags go on an extended server. Tags that do not fit are dropped and
//! reported by key, never sent to fail the call. Values are never reported.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::arn::shorten;

pub type Tags = BTreeMap<String, String>;

pub const MAX_TAGS: usize = 50;
/// Keys under this prefix are the function's own (the interface reserves up to
/// two of the 50); a configured or copied tag under it is dropped.
pub const RESERVED_PREFIX: &str = "drs-extender:";
/// The tag that names the invocation whose create made an extended server, read
/// back to tell `created` from `skipped` without trusting any clock.
pub const MADE_BY_KEY: &str = "drs-extender:request-id";
/// What user tags may take of the 50: two are the function's own (this one, and
/// the mark of a broken extension, `stale::ERROR_SINCE_KEY`, added later).
pub const MAX_USER_TAGS: usize = MAX_TAGS - 2;
pub const MAX_KEY_LEN: usize = 256;
pub const MAX_VALUE_LEN: usize = 256;

/// A tag left off an extended server, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DroppedTag {
    pub key: String,
    pub reason: DropReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DropReason {
    /// Keys starting `aws:` are reserved for AWS, and `drs-extender:` for the
    /// function's own tag.
    ReservedPrefix,
    KeyTooLong,
    ValueTooLong,
    /// Past the 50 tags a resource may carry.
    TooManyTags,
}

/// A staging server's tags as DRS listed them, kept within what could ever be
/// applied or reported: DRS is input like any other, and a server's tags are
/// held until it is extended. Keys and values past their limit are kept one
/// character over it, so they are still dropped for their length.
pub fn bounded_copy(tags: &std::collections::HashMap<String, String>) -> Tags {
    let cut = |text: &str, most: usize| text.chars().take(most + 1).collect::<String>();
    tags.iter()
        .take(MAX_TAGS * 2)
        .map(|(key, value)| (cut(key, MAX_KEY_LEN), cut(value, MAX_VALUE_LEN)))
        .collect()
}

/// The tags for one extended server: configured tags win over copied ones; then
/// what cannot be applied is dropped, copied tags first when over the limit.
pub fn for_extension(configured: &Tags, copied: Option<&Tags>) -> (Tags, Vec<DroppedTag>) {
    let mut kept = Tags::new();
    let mut dropped = Vec::new();
    let copied = copied
        .into_iter()
        .flatten()
        .filter(|(key, _)| !configured.contains_key(*key));
    for (key, value) in configured.iter().chain(copied) {
        let reason = if key.starts_with("aws:") || key.starts_with(RESERVED_PREFIX) {
            Some(DropReason::ReservedPrefix)
        } else if key.chars().count() > MAX_KEY_LEN {
            Some(DropReason::KeyTooLong)
        } else if value.chars().count() > MAX_VALUE_LEN {
            Some(DropReason::ValueTooLong)
        } else if kept.len() == MAX_USER_TAGS {
            Some(DropReason::TooManyTags)
        } else {
            None
        };
        match reason {
            Some(reason) => dropped.push(DroppedTag {
                key: shorten(key),
                reason,
            }),
            None => {
                kept.insert(key.clone(), value.clone());
            }
        }
    }
    (kept, dropped)
}

/// The first reason a set of configured tags could not be applied whole.
pub fn first_unusable(tags: &Tags) -> Option<String> {
    let (_, dropped) = for_extension(tags, None);
    dropped
        .first()
        .map(|d| format!("tag `{}` cannot be applied: {:?}", d.key, d.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn configured_tags_win_and_reserved_keys_are_dropped() {
        let configured = tags(&[("owner", "dr-team")]);
        let copied = tags(&[
            ("owner", "app-team"),
            ("app", "billing"),
            ("aws:cloudformation:stack-name", "x"),
        ]);
        let (kept, dropped) = for_extension(&configured, Some(&copied));
        assert_eq!(kept, tags(&[("owner", "dr-team"), ("app", "billing")]));
        assert_eq!(
            dropped,
            vec![DroppedTag {
                key: "aws:cloudformation:stack-name".into(),
                reason: DropReason::ReservedPrefix
            }]
        );
    }

    #[test]
    fn keys_and_values_at_the_limit_are_kept_and_past_it_dropped() {
        let at = "k".repeat(256);
        let past = "k".repeat(257);
        let copied = tags(&[
            (&at, &"v".repeat(256)),
            (&past, "v"),
            ("long-value", &"v".repeat(257)),
        ]);
        let (kept, dropped) = for_extension(&Tags::new(), Some(&copied));
        assert_eq!(kept.len(), 1);
        assert!(kept.contains_key(&at));
        let reasons: Vec<_> = dropped.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            vec![DropReason::KeyTooLong, DropReason::ValueTooLong]
        );
        assert!(dropped.iter().all(|d| d.key.chars().count() <= 97));
    }

    #[test]
    fn at_most_forty_eight_tags_configured_ones_first_two_left_for_the_functions_own() {
        let configured: Tags = (0..10).map(|i| (format!("c{i:02}"), "x".into())).collect();
        let copied: Tags = (0..45).map(|i| (format!("a{i:02}"), "x".into())).collect();
        let (kept, dropped) = for_extension(&configured, Some(&copied));
        assert_eq!(kept.len(), MAX_TAGS - 2);
        assert!(configured.keys().all(|k| kept.contains_key(k)));
        assert_eq!(dropped.len(), 7);
        assert!(dropped.iter().all(|d| d.reason == DropReason::TooManyTags));
    }

    #[test]
    fn the_functions_own_prefix_is_not_taken_from_users() {
        let copied = tags(&[(MADE_BY_KEY, "someone-else"), ("drs-extender:x", "y")]);
        let (kept, dropped) = for_extension(&Tags::new(), Some(&copied));
        assert!(kept.is_empty());
        assert!(dropped
            .iter()
            .all(|d| d.reason == DropReason::ReservedPrefix));
    }

    #[test]
    fn multibyte_characters_count_as_one() {
        let key = "ü".repeat(256);
        let (kept, dropped) = for_extension(&tags(&[(&key, "v")]), None);
        assert_eq!(kept.len(), 1);
        assert!(dropped.is_empty());
    }

    #[test]
    fn unusable_configured_tags_are_named() {
        assert!(first_unusable(&tags(&[("aws:x", "y")]))
            .unwrap()
            .contains("aws:x"));
        assert_eq!(first_unusable(&tags(&[("team", "dr")])), None);
    }
}
