//! What each plan allows an organization to hold, and the one check against it.
//!
//! A plan limits five things per organization ([`Resource`]): boards, members, API keys,
//! webhooks and attachment storage in bytes. [`PlanTable`] holds the limits of every plan (the
//! defaults of `docs/PLANS.md`, each overridable by a setting, [`PlanOverrides`]); [`check`]
//! decides whether one more of a thing fits. The org actor runs it against its plan and the
//! organization's current [`Usage`]. Nothing here ever removes anything: an organization over
//! its limit (after a downgrade) keeps what it has and is only refused new creations.

use std::fmt;
use std::str::FromStr;

use crate::billing::Plan;

/// What a plan limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Resource {
    /// Boards not deleted.
    Boards,
    /// Members of the organization.
    Members,
    /// API keys neither revoked nor expired.
    ApiKeys,
    /// Webhooks of boards not deleted, enabled or not.
    Webhooks,
    /// Bytes of attachments stored.
    StorageBytes,
}

impl Resource {
    /// Every resource, in the order the wire shows them.
    pub const ALL: [Resource; 5] = [
        Resource::Boards,
        Resource::Members,
        Resource::ApiKeys,
        Resource::Webhooks,
        Resource::StorageBytes,
    ];

    /// The name used in settings and error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            Resource::Boards => "boards",
            Resource::Members => "members",
            Resource::ApiKeys => "api_keys",
            Resource::Webhooks => "webhooks",
            Resource::StorageBytes => "storage_bytes",
        }
    }

    fn parse(name: &str) -> Option<Resource> {
        match name {
            // `storage` is accepted as the short form in settings.
            "storage" => Some(Resource::StorageBytes),
            _ => Resource::ALL.into_iter().find(|r| r.as_str() == name),
        }
    }
}

/// One plan's limits; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanLimits {
    /// Boards.
    pub boards: Option<u64>,
    /// Members.
    pub members: Option<u64>,
    /// API keys.
    pub api_keys: Option<u64>,
    /// Webhooks.
    pub webhooks: Option<u64>,
    /// Attachment bytes.
    pub storage_bytes: Option<u64>,
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

impl PlanLimits {
    /// Nothing limited.
    pub const UNLIMITED: PlanLimits = PlanLimits {
        boards: None,
        members: None,
        api_keys: None,
        webhooks: None,
        storage_bytes: None,
    };

    /// The documented defaults of `plan` (`docs/PLANS.md`).
    pub const fn default_for(plan: Plan) -> PlanLimits {
        match plan {
            Plan::Free => PlanLimits {
                boards: Some(3),
                members: Some(5),
                api_keys: Some(2),
                webhooks: Some(1),
                storage_bytes: Some(100 * MIB),
            },
            Plan::Pro => PlanLimits {
                boards: Some(100),
                members: Some(50),
                api_keys: Some(50),
                webhooks: Some(20),
                storage_bytes: Some(50 * GIB),
            },
            Plan::Enterprise => PlanLimits::UNLIMITED,
        }
    }

    /// The limit on `resource`.
    pub const fn get(&self, resource: Resource) -> Option<u64> {
        match resource {
            Resource::Boards => self.boards,
            Resource::Members => self.members,
            Resource::ApiKeys => self.api_keys,
            Resource::Webhooks => self.webhooks,
            Resource::StorageBytes => self.storage_bytes,
        }
    }

    fn set(&mut self, resource: Resource, limit: Option<u64>) {
        match resource {
            Resource::Boards => self.boards = limit,
            Resource::Members => self.members = limit,
            Resource::ApiKeys => self.api_keys = limit,
            Resource::Webhooks => self.webhooks = limit,
            Resource::StorageBytes => self.storage_bytes = limit,
        }
    }
}

/// A setting's overrides of one plan's limits: `boards=3,members=5,api_keys=2,webhooks=1,
/// storage=100MiB`; any subset, in any order; `unlimited` lifts a limit; sizes take `KiB`,
/// `MiB`, `GiB` or `TiB`. The empty text overrides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOverrides(Vec<(Resource, Option<u64>)>);

impl PlanOverrides {
    /// Lifts every limit.
    pub fn unlimited() -> Self {
        PlanOverrides(Resource::ALL.into_iter().map(|r| (r, None)).collect())
    }

    /// `base` with these overrides applied.
    pub fn applied_to(&self, mut base: PlanLimits) -> PlanLimits {
        for (resource, limit) in &self.0 {
            base.set(*resource, *limit);
        }
        base
    }
}

fn parse_amount(text: &str) -> Option<u64> {
    let units: [(&str, u64); 4] = [("KiB", 1 << 10), ("MiB", MIB), ("GiB", GIB), ("TiB", 1 << 40)];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.trim().parse::<u64>().ok()?.checked_mul(factor);
        }
    }
    text.parse().ok()
}

impl FromStr for PlanOverrides {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut overrides = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) =
                pair.split_once('=').ok_or_else(|| format!("`{pair}` is not name=value"))?;
            let resource = Resource::parse(name.trim()).ok_or_else(|| {
                format!(
                    "`{}` is no limit (boards, members, api_keys, webhooks, storage)",
                    name.trim()
                )
            })?;
            let value = value.trim();
            let limit = if value == "unlimited" {
                None
            } else {
                Some(parse_amount(value).ok_or_else(|| {
                    format!("`{value}` is not a number, a size such as 100MiB, or `unlimited`")
                })?)
            };
            overrides.push((resource, limit));
        }
        Ok(PlanOverrides(overrides))
    }
}

/// The limits of every plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanTable {
    /// `free`.
    pub free: PlanLimits,
    /// `pro`.
    pub pro: PlanLimits,
    /// `enterprise`.
    pub enterprise: PlanLimits,
}

impl Default for PlanTable {
    fn default() -> Self {
        PlanTable {
            free: PlanLimits::default_for(Plan::Free),
            pro: PlanLimits::default_for(Plan::Pro),
            enterprise: PlanLimits::default_for(Plan::Enterprise),
        }
    }
}

impl PlanTable {
    /// The limits of `plan`.
    pub const fn of(&self, plan: Plan) -> &PlanLimits {
        match plan {
            Plan::Free => &self.free,
            Plan::Pro => &self.pro,
            Plan::Enterprise => &self.enterprise,
        }
    }
}

/// What an organization holds now, of each limited resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Boards.
    pub boards: u64,
    /// Members.
    pub members: u64,
    /// API keys.
    pub api_keys: u64,
    /// Webhooks.
    pub webhooks: u64,
    /// Attachment bytes.
    pub storage_bytes: u64,
}

impl Usage {
    /// The use of `resource`.
    pub const fn get(&self, resource: Resource) -> u64 {
        match resource {
            Resource::Boards => self.boards,
            Resource::Members => self.members,
            Resource::ApiKeys => self.api_keys,
            Resource::Webhooks => self.webhooks,
            Resource::StorageBytes => self.storage_bytes,
        }
    }
}

/// A creation refused by the plan: `402 plan_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanLimitExceeded {
    /// What ran out.
    pub resource: Resource,
    /// The organization's plan.
    pub plan: Plan,
    /// The plan's limit on it.
    pub limit: u64,
    /// What the organization holds now.
    pub used: u64,
}

impl fmt::Display for PlanLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plan limit reached: {} (the {} plan allows {}; {} in use)",
            self.resource.as_str(),
            self.plan.as_str(),
            self.limit,
            self.used
        )
    }
}

/// Whether `adding` more of `resource` fits `plan`'s `limits` on top of `usage`. An
/// organization already over a limit is refused any more, never made to give anything up.
pub fn check(
    plan: Plan,
    limits: &PlanLimits,
    usage: &Usage,
    resource: Resource,
    adding: u64,
) -> Result<(), PlanLimitExceeded> {
    let Some(limit) = limits.get(resource) else { return Ok(()) };
    let used = usage.get(resource);
    if used.saturating_add(adding) > limit {
        return Err(PlanLimitExceeded { resource, plan, limit, used });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_slot_fits_and_the_next_does_not() {
        let limits = PlanLimits::default_for(Plan::Free);
        let mut usage = Usage { boards: 2, ..Usage::default() };
        assert_eq!(check(Plan::Free, &limits, &usage, Resource::Boards, 1), Ok(()));
        usage.boards = 3;
        let refused = check(Plan::Free, &limits, &usage, Resource::Boards, 1).unwrap_err();
        assert_eq!((refused.limit, refused.used), (3, 3));
        assert_eq!(
            refused.to_string(),
            "plan limit reached: boards (the free plan allows 3; 3 in use)"
        );
    }

    #[test]
    fn over_the_limit_is_refused_and_unlimited_always_fits() {
        let free = PlanLimits::default_for(Plan::Free);
        let over = Usage { members: 40, storage_bytes: u64::MAX, ..Usage::default() };
        assert!(check(Plan::Free, &free, &over, Resource::Members, 1).is_err());
        assert!(check(Plan::Free, &free, &over, Resource::StorageBytes, 1).is_err());
        let enterprise = PlanLimits::default_for(Plan::Enterprise);
        assert_eq!(check(Plan::Enterprise, &enterprise, &over, Resource::StorageBytes, 1), Ok(()));
    }

    #[test]
    fn a_file_counts_its_bytes() {
        let free = PlanLimits::default_for(Plan::Free);
        let usage = Usage { storage_bytes: 100 * MIB - 10, ..Usage::default() };
        assert_eq!(check(Plan::Free, &free, &usage, Resource::StorageBytes, 10), Ok(()));
        assert!(check(Plan::Free, &free, &usage, Resource::StorageBytes, 11).is_err());
    }

    #[test]
    fn overrides_parse_and_apply() {
        let overrides: PlanOverrides =
            "boards=7, storage=2GiB,webhooks=unlimited,api_keys=0".parse().unwrap();
        let limits = overrides.applied_to(PlanLimits::default_for(Plan::Free));
        assert_eq!(limits.boards, Some(7));
        assert_eq!(limits.storage_bytes, Some(2 * GIB));
        assert_eq!(limits.webhooks, None);
        assert_eq!(limits.api_keys, Some(0));
        assert_eq!(limits.members, Some(5));
        assert_eq!("".parse::<PlanOverrides>().unwrap(), PlanOverrides::default());
        assert_eq!("storage_bytes=5".parse::<PlanOverrides>().unwrap().0.len(), 1);
        for bad in ["boards", "seats=3", "boards=-1", "boards=lots", "storage=1PiB"] {
            assert!(bad.parse::<PlanOverrides>().is_err(), "{bad}");
        }
    }
}
