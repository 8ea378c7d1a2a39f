//! `docs/aws-behaviour.md` is the register of every AWS behaviour the code and
//! the templates rely on. Where AWS does not document a behaviour, `local-aws`
//! offers a switch for each plausible reading, and the register names it with
//! the tests that run under it. These tests keep the two in step: a switch
//! added to `local-aws/src/world.rs` and not named in the register fails here,
//! and so does a name in the register that `world.rs` no longer has.
//!
//! A switch is a `pub` field of `World` or of `Replication` (what one server
//! shows), or a variant of a `pub enum` in `world.rs`, named in the register as
//! `` `World::field` ``, `` `Replication::field` `` or `` `Enum::Variant` ``
//! inside backticks.

use std::collections::BTreeSet;
use std::path::Path;

/// Fields of `World` that record what happened or hold internal state; they
/// configure no behaviour, so the register need not name them.
const NOT_SWITCHES: &[&str] = &[
    "default_account",
    "throttled",
    "throttled_at",
    "service_time",
];

/// The structs whose `pub` fields are switches.
const SWITCH_STRUCTS: &[&str] = &["World", "Replication"];

const WORLD: &str = "local-aws/src/world.rs";
const REGISTER: &str = "docs/aws-behaviour.md";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// What `world.rs` declares.
#[derive(Default)]
struct Declared {
    /// `Type::member` of every switch.
    switches: BTreeSet<String>,
    /// `World::field` of the fields exempted by `NOT_SWITCHES`, as found.
    exempt: BTreeSet<String>,
    /// Every type a switch can be named by: the enums and `SWITCH_STRUCTS`.
    types: BTreeSet<String>,
}

/// The leading identifier of `text` (letters, digits, underscores).
fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// Reads the `pub enum` variants and the `pub` fields of `SWITCH_STRUCTS`, line
/// by line: doc comments, comments and attributes are skipped, and braces are
/// counted so that the fields of a struct variant are not taken for variants.
fn declared(source: &str) -> Declared {
    enum Item {
        Enum(String),
        Struct(String),
        Other,
    }
    let mut found = Declared::default();
    let mut item: Option<Item> = None;
    let mut depth = 0usize;
    for raw in source.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with("//") || line.starts_with("#[") {
            continue;
        }
        if item.is_none() {
            let header = |keyword: &str| {
                line.strip_prefix(keyword)
                    .map(identifier)
                    .filter(|name| !name.is_empty() && line.ends_with('{'))
                    .map(str::to_owned)
            };
            if let Some(name) = header("pub enum ") {
                found.types.insert(name.clone());
                item = Some(Item::Enum(name));
                depth = 1;
            } else if let Some(name) = header("pub struct ") {
                let switch = SWITCH_STRUCTS.contains(&name.as_str());
                if switch {
                    found.types.insert(name.clone());
                }
                item = Some(if switch {
                    Item::Struct(name)
                } else {
                    Item::Other
                });
                depth = 1;
            }
            continue;
        }
        if depth == 1 {
            match item.as_ref() {
                Some(Item::Enum(name)) => {
                    let variant = identifier(line);
                    if variant.starts_with(|c: char| c.is_ascii_uppercase()) {
                        found.switches.insert(format!("{name}::{variant}"));
                    }
                }
                Some(Item::Struct(name)) => {
                    if let Some(rest) = line.strip_prefix("pub ") {
                        let field = identifier(rest);
                        if !field.is_empty() && rest[field.len()..].trim_start().starts_with(':') {
                            let named = format!("{name}::{field}");
                            if name == "World" && NOT_SWITCHES.contains(&field) {
                                found.exempt.insert(named);
                            } else {
                                found.switches.insert(named);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let opened = line.matches('{').count();
        let closed = line.matches('}').count();
        depth = (depth + opened).saturating_sub(closed);
        if depth == 0 {
            item = None;
        }
    }
    found
}

/// Every `Type::member` written inside backticks in the register, where `Type`
/// starts with a capital letter (a call's arguments after it are allowed:
/// `` `ExtensionClock::Skewed(s)` ``).
fn named(register: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for span in register.split('`').skip(1).step_by(2) {
        let mut rest = span;
        while let Some(at) = rest.find("::") {
            let before = &rest[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let owner = &before[start..];
            let member = identifier(&rest[at + 2..]);
            if owner.starts_with(|c: char| c.is_ascii_uppercase()) && !member.is_empty() {
                names.insert(format!("{owner}::{member}"));
            }
            rest = &rest[at + 2..];
        }
    }
    names
}

#[test]
fn the_parser_sees_the_switches_and_the_exemptions() {
    let found = declared(&read(WORLD));
    for expected in [
        "World::page_tokens",
        "World::duplicate_create",
        "Replication::lag",
        "PageTokens::Offset",
        "Fault::Error",
        "Fault::CutShort",
        "SourceServerQuota::Applied",
    ] {
        assert!(
            found.switches.contains(expected),
            "{WORLD}: {expected} not read as a switch; read: {:?}",
            found.switches
        );
    }
    for field in ["status", "code", "message", "retry_after"] {
        assert!(
            !found.switches.contains(&format!("Fault::{field}")),
            "a field of the struct variant Fault::Error was read as a variant"
        );
    }
    let missing: Vec<_> = NOT_SWITCHES
        .iter()
        .map(|field| format!("World::{field}"))
        .filter(|named| !found.exempt.contains(named))
        .collect();
    assert!(
        missing.is_empty(),
        "exempted in tests/aws_behaviour.rs but no longer fields of World: {missing:?}"
    );
}

#[test]
fn every_local_aws_switch_is_named_in_the_register() {
    let found = declared(&read(WORLD));
    let names = named(&read(REGISTER));
    let missing: Vec<_> = found.switches.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "{} switch(es) of {WORLD} not named in {REGISTER} (name each, in backticks, \
         in the row of the behaviour it stands in for, with the tests that run under it): {missing:?}",
        missing.len()
    );
}

#[test]
fn the_register_names_no_switch_that_is_gone() {
    let found = declared(&read(WORLD));
    let gone: Vec<_> = named(&read(REGISTER))
        .into_iter()
        .filter(|name| !found.switches.contains(name) && !found.exempt.contains(name))
        .collect();
    assert!(
        gone.is_empty(),
        "{REGISTER} names {} switch(es) that {WORLD} does not declare (a removed or renamed \
         switch, or a `Type::member` in backticks that is no switch; known types: {:?}): {gone:?}",
        gone.len(),
        found.types
    );
}
