//! The identity of one top-level statement: what a code input names.
//!
//! Identity is structural, never positional: a definition is named by its
//! module, its kind, what it binds and its ordinal among the statements of
//! its module that bind the same names (in source order). A statement that
//! binds nothing (`del x`, `logger.setLevel(...)`, `_REGISTRY.append(f)`)
//! is named by its normalized content and its ordinal among identical
//! statements. So inserting a comment, reformatting, or editing an unrelated
//! function never renames anything, and a name bound twice (`SCALE = 2` then
//! `SCALE = SCALE * 3`) is two distinct definitions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What kind of top-level statement a definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefinitionKind {
    /// `def` / `async def`.
    Function,
    /// `class`.
    Class,
    /// An assignment to plain names (also annotated, augmented, `type`).
    Assignment,
    /// `import` / `from ... import`.
    Import,
    /// Anything else (`if`, `try`, `for`, a bare call, `del`, ...).
    Statement,
}

impl DefinitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Function => "function",
            DefinitionKind::Class => "class",
            DefinitionKind::Assignment => "assignment",
            DefinitionKind::Import => "import",
            DefinitionKind::Statement => "statement",
        }
    }
}

impl FromStr for DefinitionKind {
    type Err = IdentityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "function" => DefinitionKind::Function,
            "class" => DefinitionKind::Class,
            "assignment" => DefinitionKind::Assignment,
            "import" => DefinitionKind::Import,
            "statement" => DefinitionKind::Statement,
            _ => return Err(IdentityParseError(s.to_owned())),
        })
    }
}

/// How a statement is named inside its module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DefinitionName {
    /// The module-level names it binds, sorted (`a,b` for `a, b = ...`;
    /// `*` for a star import). A `def`/`class` is named by its own name.
    Binds(String),
    /// It binds nothing: the hex of its normalized content hash.
    Content(String),
}

impl DefinitionName {
    pub fn as_str(&self) -> &str {
        match self {
            DefinitionName::Binds(s) | DefinitionName::Content(s) => s,
        }
    }
}

/// The structural identity of a top-level statement.
///
/// Serialized (JSON, indexes) as its canonical text form (see
/// [`fmt::Display`] / [`FromStr`]):
/// `KIND MODULE.NAME#ORDINAL`, with `NAME` = `=HEX` for a statement named
/// by its content: e.g. `function pkg.util.clean#0`,
/// `assignment pkg.SCALE#1`, `statement pkg.mod.=3fa9…#0`. It contains no
/// `:`, so it can be embedded in `:`-separated input names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DefinitionId {
    pub module: String,
    pub kind: DefinitionKind,
    pub name: DefinitionName,
    /// 0 for the first statement of the module with this name, 1 for the
    /// second, ... in source order.
    pub ordinal: u32,
}

impl DefinitionId {
    /// `module.name` for a binding, `module.<statement>` otherwise: how
    /// humans (and `casher deps`) refer to it.
    pub fn display_name(&self) -> String {
        match &self.name {
            DefinitionName::Binds(names) => format!("{}.{names}", self.module),
            DefinitionName::Content(hash) => {
                format!(
                    "{}.<statement {}>",
                    self.module,
                    &hash[..hash.len().min(12)]
                )
            }
        }
    }
}

impl fmt::Display for DefinitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match &self.name {
            DefinitionName::Binds(names) => names.clone(),
            DefinitionName::Content(hash) => format!("={hash}"),
        };
        write!(
            f,
            "{} {}.{name}#{}",
            self.kind.as_str(),
            self.module,
            self.ordinal
        )
    }
}

impl From<DefinitionId> for String {
    fn from(id: DefinitionId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for DefinitionId {
    type Error = IdentityParseError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A string that is not the canonical form of a [`DefinitionId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a definition identity: {0:?}")]
pub struct IdentityParseError(pub String);

impl FromStr for DefinitionId {
    type Err = IdentityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityParseError(s.to_owned());
        let (kind, rest) = s.split_once(' ').ok_or_else(bad)?;
        let (qualified, ordinal) = rest.rsplit_once('#').ok_or_else(bad)?;
        // Names never contain a dot (identifiers, `,`, `*`, `=hex`).
        let (module, name) = qualified.rsplit_once('.').ok_or_else(bad)?;
        if module.is_empty() || name.is_empty() {
            return Err(bad());
        }
        let name = match name.strip_prefix('=') {
            Some(hash) => DefinitionName::Content(hash.to_owned()),
            None => DefinitionName::Binds(name.to_owned()),
        };
        Ok(DefinitionId {
            module: module.to_owned(),
            kind: kind.parse()?,
            name,
            ordinal: ordinal.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for id in [
            DefinitionId {
                module: "pkg.util".into(),
                kind: DefinitionKind::Function,
                name: DefinitionName::Binds("clean".into()),
                ordinal: 0,
            },
            DefinitionId {
                module: "m".into(),
                kind: DefinitionKind::Import,
                name: DefinitionName::Binds("*".into()),
                ordinal: 3,
            },
            DefinitionId {
                module: "a.b".into(),
                kind: DefinitionKind::Statement,
                name: DefinitionName::Content("ab12".into()),
                ordinal: 1,
            },
        ] {
            let text = id.to_string();
            assert!(!text.contains(':'), "{text}");
            assert_eq!(text.parse::<DefinitionId>().unwrap(), id);
        }
        assert!("function nodot#0".parse::<DefinitionId>().is_err());
        assert!("weird m.x#0".parse::<DefinitionId>().is_err());
        assert!("function m.x#z".parse::<DefinitionId>().is_err());
    }
}
