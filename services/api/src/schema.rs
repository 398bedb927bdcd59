//! The record kinds of the domain: which fields, sets and workflow events each kind carries.
//!
//! **Every id in this file is stable forever.** Kind, field, set and event ids are what the op
//! log, the wire and every node's database hold; names are only for people and JSON columns.
//! A field may be added with a new id, never renumbered, retyped or reused; a retired id stays
//! reserved (write it down here). Bump [`SCHEMA_VERSION`] whenever a kind, field, set or event
//! is added, so the sync handshake refuses a peer that cannot read what we write.
//!
//! Every kind has field 0 `deleted` and field 1 `org` (the owning org unit) from the replica
//! core. Every event kind has payload field 0 `org`: the org unit the step is taken for, which
//! the write rules check the operation's origin against (the record's org for the owner's
//! steps, the handling unit's org for replies and returns, the deputy's org for check-ins and
//! satisfaction, the handling unit for opinions). Statuses are never fields: they are folds of
//! the events by the domain crate.

use renda_replica::schema::DefinitionError;
use renda_replica::{Schema, ValueType};

/// Version of this schema, exchanged in the sync handshake.
pub const SCHEMA_VERSION: u32 = 4;

/// Record kind names and their ids (stable forever).
pub mod kind {
    pub const ORG_UNIT: &str = "org_unit"; // 1
    pub const DEPUTY: &str = "deputy"; // 2
    /// Local-only: the ID-card number of a deputy, kept at the node that owns the deputy.
    pub const DEPUTY_IDENTITY: &str = "deputy_identity"; // 3
    pub const DEPUTY_GROUP: &str = "deputy_group"; // 4
    pub const STATION: &str = "station"; // 5
    pub const ACTIVITY: &str = "activity"; // 6
    pub const OPINION: &str = "opinion"; // 7
    pub const HANDLING_UNIT: &str = "handling_unit"; // 8
    pub const SUGGESTION: &str = "suggestion"; // 9
    pub const CONGRESS_SESSION: &str = "congress_session"; // 10
    pub const PROJECT: &str = "project"; // 11
    pub const REPORT_BACK: &str = "report_back"; // 12
    pub const EVALUATION: &str = "evaluation"; // 13
    pub const APPRAISAL: &str = "appraisal"; // 14
    /// A person who logs in (gateway, consoles); only the PHC password hash is stored.
    pub const USER: &str = "user"; // 15
}

/// The 八有四公开 checklist items and their station field ids (10..=21), in the standard's order.
pub const CHECKLIST_FIELDS: [(&str, u16); 12] = [
    ("premises", 10),
    ("information", 11),
    ("rules", 12),
    ("plan", 13),
    ("files", 14),
    ("materials", 15),
    ("equipment", 16),
    ("online_platform", 17),
    ("deputy_info_published", 18),
    ("reception_plan_published", 19),
    ("work_status_published", 20),
    ("operation_status_published", 21),
];

use ValueType::{Bool, Date, Int, Org, Ref, Text};

/// A list of UUIDs in one text field (comma separated), for event payloads that name several
/// units or deputies: room for 500 of them.
const ID_LIST_CHARS: u32 = 500 * 37;

/// The schema of every record kind of the domain.
pub fn schema() -> Schema {
    // The definition below is fixed at compile time; the unit test `schema_builds` proves it.
    build().unwrap_or_else(|e| panic!("the built-in schema is inconsistent: {e}"))
}

/// Builds the schema, reporting a definition mistake instead of panicking.
pub fn build() -> Result<Schema, DefinitionError> {
    Schema::builder(SCHEMA_VERSION)
        // The org tree is reference data every node holds.
        .kind(1, kind::ORG_UNIT, |k| k.text(2, "name", 50).broadcast())
        .kind(2, kind::DEPUTY, |k| {
            k.text(2, "name", 30)
                // Comma-separated levels: national, provincial, city, county, township.
                .text(3, "levels", 60)
                .text(4, "constituency", 100)
                .field(5, "term", Int, 0)
                .text(6, "gender", 10)
                .text(7, "ethnicity", 20)
                .text(8, "sector", 100)
                .text(9, "phone", 20)
                .text(10, "qr_token", 64)
                .text(11, "status", 20)
                // The masked form only; the number itself is in deputy_identity.
                .text(12, "id_card_masked", 18)
                .event(
                    1,
                    "pledge",
                    &[
                        (0, "org", Org, true),
                        (1, "text", Text, true),
                        (2, "on", Date, true),
                    ],
                )
                .event(
                    2,
                    "visit",
                    &[
                        (0, "org", Org, true),
                        (1, "households", Int, true),
                        (2, "note", Text, false),
                        (3, "on", Date, true),
                    ],
                )
                // Added in schema version 3. 联系选民、结对: the latest by stamp is the
                // current pairing; earlier ones stay as history.
                .event(
                    3,
                    "voter_link",
                    &[
                        (0, "org", Org, true),
                        (1, "households", Int, true),
                        (2, "area", Text, true),
                        (3, "since", Date, true),
                    ],
                )
        })
        .kind(3, kind::DEPUTY_IDENTITY, |k| {
            // ID-card numbers stay at the node that recorded them (design.md §4): the store
            // keeps this kind out of every sync feed.
            k.field(2, "deputy", Ref, 0)
                .text(3, "id_card", 18)
                .local_only()
        })
        .kind(4, kind::DEPUTY_GROUP, |k| {
            k.text(2, "name", 50)
                .text(3, "sector", 100)
                .set(1, "members")
        })
        .kind(5, kind::STATION, |k| {
            let mut k = k
                .text(2, "name", 50)
                .text(3, "kind", 40)
                .text(4, "address", 200)
                .text(5, "qr_token", 64)
                .set(1, "residents")
                .event(
                    1,
                    "reception",
                    &[
                        (0, "org", Org, true),
                        (1, "deputies", Text, true),
                        (2, "on", Date, true),
                        (3, "note", Text, false),
                    ],
                );
            for (name, id) in CHECKLIST_FIELDS {
                k = k.field(id, name, Bool, 0);
            }
            k
        })
        .kind(6, kind::ACTIVITY, |k| {
            k.text(2, "kind", 40)
                .text(3, "title", 100)
                .field(4, "starts_at", Int, 0)
                .text(5, "venue", 200)
                .text(6, "qr_token", 64)
                .event(
                    1,
                    "dispatched",
                    &[
                        (0, "org", Org, true),
                        (1, "deputy", Ref, true),
                        (2, "to_org", Org, true),
                    ],
                )
                .event(
                    2,
                    "accepted",
                    &[(0, "org", Org, true), (1, "deputy", Ref, true)],
                )
                .event(
                    3,
                    "checked_in",
                    &[
                        (0, "org", Org, true),
                        (1, "deputy", Ref, true),
                        (2, "qr_token", Text, true),
                        (3, "at", Int, true),
                        // "scan": the deputy's own check-in with the activity's signed code;
                        // "proxy": entered by a clerk on the deputy's behalf (代录).
                        (4, "mode", Text, false),
                    ],
                )
                .event(
                    4,
                    "speech",
                    &[
                        (0, "org", Org, true),
                        (1, "deputy", Ref, true),
                        (2, "topic", Text, false),
                        (3, "at", Int, true),
                    ],
                )
                .event(
                    5,
                    "declined",
                    &[
                        (0, "org", Org, true),
                        (1, "deputy", Ref, true),
                        (2, "reason", Text, false),
                    ],
                )
        })
        .kind(7, kind::OPINION, |k| {
            k.text(2, "content", 2000)
                .text(3, "source", 20)
                .field(4, "station", Ref, 0)
                .field(5, "raised_at", Int, 0)
                .event(
                    1,
                    "routed",
                    &[
                        (0, "org", Org, true),
                        (1, "route", Text, true),
                        (2, "to", Text, false),
                        (3, "at", Int, true),
                    ],
                )
                .event(
                    2,
                    "escalated",
                    &[
                        (0, "org", Org, true),
                        (1, "to", Org, true),
                        (2, "at", Int, true),
                    ],
                )
                .event(
                    3,
                    "resolved",
                    &[
                        (0, "org", Org, true),
                        (1, "note", Text, true),
                        (2, "at", Int, true),
                    ],
                )
                .event(
                    4,
                    "followed_up",
                    &[
                        (0, "org", Org, true),
                        (1, "citizen_satisfied", Bool, true),
                        (2, "at", Int, true),
                    ],
                )
        })
        .kind(8, kind::HANDLING_UNIT, |k| k.text(2, "name", 100))
        .kind(9, kind::SUGGESTION, |k| {
            let on = |id: u16| (id, "on", Date, true);
            k.text(2, "kind", 20)
                .text(3, "title", 100)
                .text(4, "body", 20_000)
                .field(5, "lead_deputy", Ref, 0)
                .set(1, "co_signers")
                .event(1, "submitted", &[(0, "org", Org, true), on(1)])
                .event(2, "reviewed", &[(0, "org", Org, true), on(1)])
                .event(
                    3,
                    "revision_requested",
                    &[(0, "org", Org, true), on(1), (2, "reason", Text, true)],
                )
                .event(4, "revised", &[(0, "org", Org, true), on(1)])
                .event(5, "withdrawn", &[(0, "org", Org, true), on(1)])
                .event(
                    6,
                    "merged",
                    &[(0, "org", Org, true), on(1), (2, "into", Ref, true)],
                )
                .event(
                    7,
                    "assigned",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        // single, split or lead_with_assisting
                        (2, "mode", Text, true),
                        (3, "units", Text, true),
                        (4, "assisting", Text, false),
                    ],
                )
                .event(
                    8,
                    "returned",
                    &[(0, "org", Org, true), on(1), (2, "unit", Ref, true)],
                )
                .event(
                    9,
                    "supervision",
                    &[(0, "org", Org, true), on(1), (2, "mode", Text, true)],
                )
                .event(10, "extension", &[(0, "org", Org, true), on(1)])
                .event(
                    11,
                    "assisting_view",
                    &[(0, "org", Org, true), on(1), (2, "unit", Ref, true)],
                )
                .event(
                    12,
                    "replied",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        (2, "unit", Ref, true),
                        (3, "category", Text, true),
                    ],
                )
                .event(
                    13,
                    "satisfaction",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        (2, "deputy", Ref, true),
                        (3, "satisfaction", Text, true),
                    ],
                )
                .event(14, "second_round", &[(0, "org", Org, true), on(1)])
                .event(15, "implemented", &[(0, "org", Org, true), on(1)])
                .event(16, "closed", &[(0, "org", Org, true), on(1)])
        })
        .kind(10, kind::CONGRESS_SESSION, |k| {
            k.text(2, "name", 100)
                .field(3, "year", Int, 0)
                .field(4, "to_adopt", Int, 0)
                // seated or present: the base of the adoption threshold
                .text(5, "threshold", 20)
                .field(6, "candidate_margin", Int, 0)
                .set(1, "seated")
                .set(2, "present")
        })
        .kind(11, kind::PROJECT, |k| {
            let on = |id: u16| (id, "on", Date, true);
            k.field(2, "year", Int, 0)
                .text(3, "title", 100)
                .text(4, "summary", 5000)
                .field(5, "budget_fen", Int, 0)
                .field(6, "session", Ref, 0)
                .event(1, "shortlisted", &[(0, "org", Org, true), on(1)])
                .event(2, "screened_out", &[(0, "org", Org, true), on(1)])
                .event(
                    3,
                    "voted",
                    &[(0, "org", Org, true), on(1), (2, "adopted", Bool, true)],
                )
                .event(
                    4,
                    "plan_set",
                    &[(0, "org", Org, true), on(1), (2, "budget_fen", Int, true)],
                )
                .event(
                    5,
                    "progress",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        (2, "percent", Int, true),
                        (3, "note", Text, false),
                    ],
                )
                .event(
                    6,
                    "supervision_adopted",
                    &[(0, "org", Org, true), on(1), (2, "group", Ref, true)],
                )
                .event(
                    7,
                    "acceptance_signed",
                    &[(0, "org", Org, true), on(1), (2, "deputy", Ref, true)],
                )
                .event(8, "acceptance_passed", &[(0, "org", Org, true), on(1)])
                .event(
                    9,
                    "scored",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        (2, "deputy", Ref, true),
                        (3, "score", Int, true),
                    ],
                )
                .event(
                    10,
                    "maintenance_started",
                    &[(0, "org", Org, true), on(1), (2, "caretaker", Ref, true)],
                )
                .event(
                    11,
                    "changed",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        (2, "change", Text, true),
                        (3, "decision_body", Text, false),
                        (4, "decision_reference", Text, false),
                        (5, "decided_on", Date, false),
                        (6, "note", Text, false),
                    ],
                )
                .event(
                    12,
                    "ballot",
                    &[
                        (0, "org", Org, true),
                        (1, "deputy", Ref, true),
                        (2, "session", Ref, true),
                        (3, "choice", Text, true),
                    ],
                )
                // Added in schema version 2.
                .event(
                    13,
                    "maintenance_visit",
                    &[
                        (0, "org", Org, true),
                        on(1),
                        (2, "deputy", Ref, true),
                        (3, "note", Text, false),
                        (4, "volunteer_points", Int, true),
                    ],
                )
        })
        .kind(12, kind::REPORT_BACK, |k| {
            k.field(2, "deputy", Ref, 0)
                .field(3, "term", Int, 0)
                .field(4, "on", Date, 0)
                .text(5, "summary", 5000)
                .field(6, "voters_present", Int, 0)
        })
        .kind(13, kind::EVALUATION, |k| {
            k.field(2, "deputy", Ref, 0)
                .field(3, "year", Int, 0)
                .field(4, "self_score", Int, 0)
                .text(5, "self_summary", 5000)
                // Comma-separated voter scores, 0–100 each.
                .text(6, "voter_scores", 40_000)
        })
        .kind(14, kind::APPRAISAL, |k| {
            k.text(2, "department", 100).field(3, "year", Int, 0).event(
                1,
                "vote",
                &[
                    (0, "org", Org, true),
                    (1, "deputy", Ref, true),
                    (2, "satisfaction", Text, true),
                ],
            )
        })
        .kind(15, kind::USER, |k| {
            k.text(2, "login", 40)
                .text(3, "display_name", 50)
                // city_office, county_office, township_clerk or read_only
                .text(4, "role", 20)
                // The argon2id PHC string; never the password.
                .text(5, "password_hash", 200)
                .field(6, "disabled", Bool, 0)
                // The user's number at its org unit (operation authors name it).
                .field(7, "number", Int, 0)
                // The deputy (role deputy) or handling unit (role handling_unit) it acts as.
                .field(8, "subject", Ref, 0)
                // Why an administrator disabled it, for the history.
                .text(9, "disabled_reason", 200)
                // Valid at every node below the unit it was made at.
                .subtree()
        })
        .build()
}

/// The comma-separated form of an id list in one text field.
pub(crate) fn id_list(ids: impl IntoIterator<Item = uuid::Uuid>) -> String {
    ids.into_iter()
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads an id list written by [`id_list`]; malformed entries are skipped.
pub(crate) fn parse_id_list(text: &str) -> Vec<uuid::Uuid> {
    text.split(',')
        .filter_map(|s| uuid::Uuid::parse_str(s.trim()).ok())
        .collect()
}

/// Most ids an id-list field holds.
pub(crate) const MAX_LIST: usize = (ID_LIST_CHARS / 37) as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_builds() {
        let schema = build().expect("schema builds");
        assert_eq!(schema.version, SCHEMA_VERSION);
        assert_eq!(schema.kinds().count(), 15);
        for kind in schema.kinds() {
            for event in &kind.events {
                assert_eq!(
                    event
                        .fields
                        .first()
                        .map(|f| (f.id.0, f.name.as_str(), f.required)),
                    Some((0, "org", true)),
                    "{}.{} must start with the required org field",
                    kind.name,
                    event.name
                );
            }
        }
    }

    #[test]
    fn ids_are_stable() {
        // These numbers are in every database and on the wire; this test fails on a renumbering.
        let schema = schema();
        let ids: Vec<(u16, &str)> = schema.kinds().map(|k| (k.id.0, k.name.as_str())).collect();
        assert_eq!(
            ids,
            vec![
                (1, "org_unit"),
                (2, "deputy"),
                (3, "deputy_identity"),
                (4, "deputy_group"),
                (5, "station"),
                (6, "activity"),
                (7, "opinion"),
                (8, "handling_unit"),
                (9, "suggestion"),
                (10, "congress_session"),
                (11, "project"),
                (12, "report_back"),
                (13, "evaluation"),
                (14, "appraisal"),
                (15, "user"),
            ]
        );
        let activity = schema.kind_named(kind::ACTIVITY).expect("activity");
        assert_eq!(activity.event_named("checked_in").map(|e| e.id.0), Some(3));
        let suggestion = schema.kind_named(kind::SUGGESTION).expect("suggestion");
        assert_eq!(suggestion.event_named("replied").map(|e| e.id.0), Some(12));
    }
}
