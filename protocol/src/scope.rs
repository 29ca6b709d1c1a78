//! API key scopes.
//!
//! A key acts as the user who made it, inside its organization only, and only for what its
//! scopes name. Reads and writes are separate scopes; a write scope does not imply the read.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! scopes {
    // `$name` is a `tt`, not a `literal`: a `literal` fragment reaches the derives wrapped in an
    // invisible group, which utoipa does not read as a string, so its schema named the variants.
    ($( $(#[$doc:meta])* $variant:ident = $name:tt, )+) => {
        /// What an API key may do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        pub enum Scope {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )+
        }

        impl Scope {
            /// Every scope.
            pub const ALL: &'static [Scope] = &[ $( Scope::$variant, )+ ];

            /// The wire name, such as `boards:read`.
            pub const fn as_str(self) -> &'static str {
                match self { $( Scope::$variant => $name, )+ }
            }

            /// Parses a wire name.
            pub fn parse(name: &str) -> Option<Scope> {
                match name { $( $name => Some(Scope::$variant), )+ _ => None }
            }
        }
    };
}

scopes! {
    /// Read boards, their columns, groups, members and events; subscribe to them.
    BoardsRead = "boards:read",
    /// Create, change and delete boards, columns, groups and board members.
    BoardsWrite = "boards:write",
    /// Read items.
    ItemsRead = "items:read",
    /// Create, change, move, archive and delete items.
    ItemsWrite = "items:write",
    /// Read updates (comments).
    UpdatesRead = "updates:read",
    /// Write, edit and delete updates.
    UpdatesWrite = "updates:write",
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(*scope));
            let json = serde_json::to_string(scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
        assert_eq!(Scope::parse("admin"), None);
    }
}
