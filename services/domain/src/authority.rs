//! Who may write what: write authority by the org tree and the domain.
//!
//! Every receiving node checks each operation's origin with [`check_write`]; a refusal is
//! quarantined by the sync layer with the reason given here. The rules:
//!
//! - **Registers.** The deputy and station registers (代表信息库, 联络站名录) are kept by the
//!   township that owns each entry and may also be corrected by the deputy office of a county
//!   or city above it, which maintains the register for its area. Both may edit the same entry
//!   while apart; a field edited on both sides is a conflict shown to a person.
//! - **Own records.** A node authors the records of its own org unit (and of the villages
//!   under a township, which run no node): deputies, groups, stations, opinions, activities,
//!   check-ins and other duty records, projects and their votes, evaluations. A county cannot
//!   forge a township's check-in, and a township cannot write another township's deputies.
//! - **Opinions** are handled by the unit now handling them: `record_org` is the handling unit,
//!   so after an escalation the county writes the next steps.
//! - **Suggestions and motions** are submitted, reviewed, revised and withdrawn at the node of
//!   the congress that received them. Assignment and the steps that belong to the assigning
//!   office (return accepted and reassignment, supervision mode, deadline extension, second
//!   round, implemented, closing) are taken by the deputy office of a county or city for its
//!   own congress and the congresses below it; a township never assigns.
//! - **Replies** (and an assisting unit's view, and a unit's return) are entered where the
//!   handling unit sits: `record_org` is the unit's org.
//! - **Satisfaction** is recorded where the deputy is: `record_org` is the deputy's org.
//! - **Org units** are reference data written by the city for its subtree.
//! - **Users** are created and managed by an administrator of the user's own unit or of an office
//!   above it (a county office for its townships' clerks), like the registers.

use serde::{Deserialize, Serialize};

use crate::org::{Level, OrgCode, OrgTree};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RecordKind {
    OrgUnit,
    Deputy,
    DeputyGroup,
    Station,
    Activity,
    DutyRecord,
    Opinion,
    Suggestion,
    Project,
    Evaluation,
    /// A user account of the console and gateway.
    User,
}

/// The step an operation takes on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Step {
    /// Creating or editing the record's fields.
    Edit,
    Dispatch,
    Accept,
    CheckIn,
    Route,
    Escalate,
    Resolve,
    FollowUp,
    Submit,
    Review,
    Withdraw,
    Assign,
    Return,
    Supervise,
    Extend,
    AssistingView,
    Reply,
    /// A deputy's satisfaction with a reply, or a deputy's score of a project.
    Evaluate,
    SecondRound,
    Implement,
    Close,
    Screen,
    Vote,
    Progress,
    SignAcceptance,
    Change,
}

/// Which node may take a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// The node of the record's org unit.
    Own,
    /// A county or city deputy office, for its congress and those below.
    Assigner,
    /// The city, for its subtree.
    City,
    /// The node of the record's org unit, or a county or city deputy office above it.
    Register,
}

fn rule(kind: RecordKind, step: Step) -> Option<Rule> {
    use RecordKind as K;
    use Step as S;
    Some(match (kind, step) {
        (K::OrgUnit, S::Edit) => Rule::City,
        (K::Deputy | K::Station | K::User, S::Edit) => Rule::Register,
        (K::DeputyGroup | K::Evaluation, S::Edit) => Rule::Own,
        (K::Activity, S::Edit | S::Dispatch | S::Accept | S::CheckIn) => Rule::Own,
        (K::DutyRecord, S::Edit | S::CheckIn) => Rule::Own,
        (K::Opinion, S::Edit | S::Route | S::Escalate | S::Resolve | S::FollowUp) => Rule::Own,
        (K::Suggestion, S::Edit | S::Submit | S::Review | S::Withdraw) => Rule::Own,
        (K::Suggestion, S::Return | S::AssistingView | S::Reply | S::Evaluate) => Rule::Own,
        (
            K::Suggestion,
            S::Assign | S::Supervise | S::Extend | S::SecondRound | S::Implement | S::Close,
        ) => Rule::Assigner,
        (
            K::Project,
            S::Edit
            | S::Screen
            | S::Vote
            | S::Progress
            | S::Supervise
            | S::SignAcceptance
            | S::Evaluate
            | S::Change,
        ) => Rule::Own,
        _ => return None,
    })
}

/// Checks that a node at `author_org` (of level `author_level`) may take `step` on a record of
/// `kind` whose org unit, in the sense the module documentation gives for each step, is
/// `record_org`.
pub fn check_write(
    author_org: &OrgCode,
    author_level: Level,
    kind: RecordKind,
    step: Step,
    record_org: &OrgCode,
    tree: &OrgTree,
) -> Result<()> {
    if author_org.level() != author_level {
        return Err(Error::invalid(
            "author_level",
            format!("{author_org} is not at level {author_level:?}"),
            format!("{author_org} 不是{}级单位", author_level.label_zh()),
        ));
    }
    if !author_level.runs_node() {
        return Err(Error::forbidden(
            "author_org",
            "a village runs no node and writes nothing itself",
            "村(社区)不运行节点，不能直接写入",
        ));
    }
    tree.require("author_org", author_org)?;
    tree.require("record_org", record_org)?;
    let Some(rule) = rule(kind, step) else {
        return Err(Error::invalid(
            "step",
            format!("step {step:?} does not apply to a {kind:?}"),
            "该操作不适用于此类记录",
        ));
    };
    match rule {
        Rule::Own => {
            let owner = record_org.node_unit();
            if owner != *author_org {
                return Err(Error::forbidden(
                    "record_org",
                    format!(
                        "{author_org} may write only its own records; this {kind:?} belongs to {owner}"
                    ),
                    format!("{author_org} 只能录入本单位的记录，该记录属于 {owner}"),
                ));
            }
        }
        Rule::Assigner => {
            if !matches!(author_level, Level::City | Level::County) {
                return Err(Error::forbidden(
                    "author_level",
                    "only a county or city deputy office assigns and supervises suggestions",
                    "只有县级以上人大代表工作机构可以交办和督办建议",
                ));
            }
            if !tree.contains(author_org, record_org) {
                return Err(Error::forbidden(
                    "record_org",
                    format!(
                        "{author_org} may act only on suggestions of its own congress and those below; {record_org} is not one"
                    ),
                    format!("{author_org} 只能交办本级及下级人大的建议，{record_org} 不在其范围内"),
                ));
            }
        }
        Rule::Register => {
            let owner = record_org.node_unit();
            let office_above = matches!(author_level, Level::City | Level::County)
                && tree.contains(author_org, record_org);
            if owner != *author_org && !office_above {
                return Err(Error::forbidden(
                    "record_org",
                    format!(
                        "{author_org} may edit only its own register entries or those of the units below it; this {kind:?} belongs to {owner}"
                    ),
                    format!("{author_org} 只能维护本单位或下级单位的名录，该记录属于 {owner}"),
                ));
            }
        }
        Rule::City => {
            if author_level != Level::City || !tree.contains(author_org, record_org) {
                return Err(Error::forbidden(
                    "author_org",
                    "org units are reference data written by the city for its subtree",
                    "组织单位为基础数据，只能由市级在其辖区内维护",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::code;

    fn write(author: &str, kind: RecordKind, step: Step, record: &str) -> Result<()> {
        let author = code(author);
        check_write(
            &author,
            author.level(),
            kind,
            step,
            &code(record),
            &OrgTree::demo(),
        )
    }

    #[test]
    fn a_township_writes_its_own_records() {
        for (kind, step) in [
            (RecordKind::Deputy, Step::Edit),
            (RecordKind::Station, Step::Edit),
            (RecordKind::Opinion, Step::Route),
            (RecordKind::DutyRecord, Step::CheckIn),
            (RecordKind::Activity, Step::CheckIn),
            (RecordKind::Project, Step::Vote),
        ] {
            assert_eq!(
                write("370202001", kind, step, "370202001"),
                Ok(()),
                "{kind:?} {step:?}"
            );
        }
        let e = write("370202001", RecordKind::Deputy, Step::Edit, "370202002").unwrap_err();
        assert!(matches!(e, Error::Forbidden { .. }));
        assert_eq!(e.field(), "record_org");
    }

    #[test]
    fn a_county_office_may_correct_the_registers_below_it_but_not_elsewhere() {
        assert_eq!(
            write("370202", RecordKind::Deputy, Step::Edit, "370202001"),
            Ok(())
        );
        assert_eq!(
            write("370200", RecordKind::Station, Step::Edit, "370202001"),
            Ok(())
        );
        let e = write("370212", RecordKind::Deputy, Step::Edit, "370202001").unwrap_err();
        assert_eq!(e.field(), "record_org");
        let e = write("370202002", RecordKind::Deputy, Step::Edit, "370202001").unwrap_err();
        assert_eq!(e.field(), "record_org");
        // Groups and workflow steps stay with their owner.
        let e = write("370202", RecordKind::DeputyGroup, Step::Edit, "370202001").unwrap_err();
        assert_eq!(e.field(), "record_org");
    }

    #[test]
    fn users_are_managed_at_their_unit_or_by_an_office_above() {
        assert_eq!(
            write("370202", RecordKind::User, Step::Edit, "370202001"),
            Ok(())
        );
        assert_eq!(
            write("370202", RecordKind::User, Step::Edit, "370202"),
            Ok(())
        );
        assert_eq!(
            write("370202001", RecordKind::User, Step::Edit, "370202001"),
            Ok(())
        );
        let e = write("370202001", RecordKind::User, Step::Edit, "370202").unwrap_err();
        assert_eq!(e.field(), "record_org");
        let e = write("370212", RecordKind::User, Step::Edit, "370202001").unwrap_err();
        assert_eq!(e.field(), "record_org");
    }

    #[test]
    fn a_county_cannot_forge_a_township_check_in() {
        let e = write("370202", RecordKind::DutyRecord, Step::CheckIn, "370202001").unwrap_err();
        assert!(matches!(e, Error::Forbidden { .. }));
        assert_eq!(e.field(), "record_org");
        assert!(e.reason().contains("belongs to 370202001"));
        assert!(e.reason_zh().contains("只能录入本单位"));
    }

    #[test]
    fn assignment_belongs_to_the_county_deputy_office() {
        assert_eq!(
            write("370202", RecordKind::Suggestion, Step::Assign, "370202"),
            Ok(())
        );
        assert_eq!(
            write("370202", RecordKind::Suggestion, Step::Assign, "370202001"),
            Ok(())
        );
        assert_eq!(
            write("370200", RecordKind::Suggestion, Step::Close, "370212"),
            Ok(())
        );
        let e = write("370202001", RecordKind::Suggestion, Step::Assign, "370202").unwrap_err();
        assert_eq!(e.field(), "author_level");
        assert!(e.reason().contains("county or city"));
        let e = write("370212", RecordKind::Suggestion, Step::Assign, "370202001").unwrap_err();
        assert_eq!(e.field(), "record_org");
        let e = write("370202", RecordKind::Suggestion, Step::Assign, "370200").unwrap_err();
        assert_eq!(e.field(), "record_org");
    }

    #[test]
    fn replies_where_the_unit_sits_and_satisfaction_where_the_deputy_is() {
        assert_eq!(
            write("370202", RecordKind::Suggestion, Step::Reply, "370202"),
            Ok(())
        );
        let e = write("370200", RecordKind::Suggestion, Step::Reply, "370202").unwrap_err();
        assert_eq!(e.field(), "record_org");
        assert_eq!(
            write(
                "370202001",
                RecordKind::Suggestion,
                Step::Evaluate,
                "370202001"
            ),
            Ok(())
        );
        let e = write(
            "370202",
            RecordKind::Suggestion,
            Step::Evaluate,
            "370202001",
        )
        .unwrap_err();
        assert_eq!(e.field(), "record_org");
    }

    #[test]
    fn villages_belong_to_their_township() {
        let mut tree = OrgTree::demo();
        tree.add(code("370202001001"), "某社区").unwrap();
        let author = code("370202001");
        let village = code("370202001001");
        assert_eq!(
            check_write(
                &author,
                Level::Township,
                RecordKind::Station,
                Step::Edit,
                &village,
                &tree
            ),
            Ok(())
        );
        let e = check_write(
            &village,
            Level::Village,
            RecordKind::Station,
            Step::Edit,
            &village,
            &tree,
        )
        .unwrap_err();
        assert_eq!(e.field(), "author_org");
    }

    #[test]
    fn malformed_requests_are_invalid() {
        let tree = OrgTree::demo();
        let e = check_write(
            &code("370202"),
            Level::Township,
            RecordKind::Deputy,
            Step::Edit,
            &code("370202"),
            &tree,
        )
        .unwrap_err();
        assert_eq!(e.field(), "author_level");
        let e = write("370202", RecordKind::Deputy, Step::Assign, "370202").unwrap_err();
        assert_eq!(e.field(), "step");
        let e = write("370202", RecordKind::Deputy, Step::Edit, "370203").unwrap_err();
        assert_eq!(e.field(), "record_org");
        assert!(matches!(e, Error::Invalid { .. }));
        let e = write("370202", RecordKind::OrgUnit, Step::Edit, "370202001").unwrap_err();
        assert_eq!(e.field(), "author_org");
        assert_eq!(
            write("370200", RecordKind::OrgUnit, Step::Edit, "370202001"),
            Ok(())
        );
    }
}
