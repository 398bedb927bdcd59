//! A form saved after other edits arrived: it is written against the version the person read,
//! so nothing written meanwhile is lost and a true conflict is shown.
//!
//! Across nodes the write is concurrent with what it never saw (the multi-process test
//! `a_stale_form_save_keeps_the_edit_made_meanwhile` runs that between processes). At one
//! node, two clerks with the same record open: the second save of a field the first changed
//! is refused, naming it, and writes nothing.

mod common;

use common::*;
use renda_proto::deputy::v1 as dep;
use renda_proto::deputy::v1::deputies_client::DeputiesClient;
use renda_proto::suggestion::v1 as sug;
use renda_proto::suggestion::v1::suggestions_client::SuggestionsClient;
use tonic::Code;

fn form(d: &dep::Deputy) -> dep::DeputyFields {
    dep::DeputyFields {
        name: d.name.clone(),
        levels: d.levels.clone(),
        constituency: d.constituency.clone(),
        term: d.term,
        gender: d.gender,
        ethnicity: d.ethnicity.clone(),
        sector: d.sector.clone(),
        phone: String::new(),
        id_card: String::new(),
        status: d.status,
    }
}

async fn open(node: &Node, id: &str) -> anyhow::Result<dep::Deputy> {
    Ok(DeputiesClient::new(node.channel.clone())
        .get_deputy(as_user(node.org, dep::GetDeputyRequest { id: id.into() }))
        .await?
        .into_inner())
}

async fn save(
    node: &Node,
    opened: &dep::Deputy,
    fields: dep::DeputyFields,
) -> Result<tonic::Response<dep::Deputy>, tonic::Status> {
    DeputiesClient::new(node.channel.clone())
        .update_deputy(as_user(
            node.org,
            dep::UpdateDeputyRequest {
                id: opened.id.clone(),
                fields: Some(fields),
                version: opened.version.clone(),
            },
        ))
        .await
}

#[tokio::test]
async fn a_second_clerk_cannot_overwrite_a_field_the_first_changed_since_it_was_opened()
-> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let id = create_deputy(&node, deputy_fields("王丽")).await?;
    let (first, second) = (open(&node, &id).await?, open(&node, &id).await?);
    save(
        &node,
        &first,
        dep::DeputyFields {
            sector: "乡村振兴".into(),
            ..form(&first)
        },
    )
    .await?;

    let before = node.store.log_len().await?;
    assert_refused(
        save(
            &node,
            &second,
            dep::DeputyFields {
                sector: "农业农村".into(),
                constituency: "第二选区".into(),
                ..form(&second)
            },
        )
        .await,
        Code::FailedPrecondition,
        "sector",
    );
    assert_eq!(node.store.log_len().await?, before, "nothing was written");
    // The other field of the same form can be saved; the first clerk's sector stands.
    let saved = save(
        &node,
        &second,
        dep::DeputyFields {
            constituency: "第二选区".into(),
            ..form(&second)
        },
    )
    .await?
    .into_inner();
    assert_eq!(
        (saved.sector.as_str(), saved.constituency.as_str()),
        ("乡村振兴", "第二选区")
    );
    assert!(saved.conflicting_fields.is_empty());
    // A form saved unchanged writes nothing at all.
    let before = node.store.log_len().await?;
    save(&node, &saved, form(&saved)).await?;
    assert_eq!(node.store.log_len().await?, before);
    Ok(())
}

#[tokio::test]
async fn an_update_without_the_version_read_is_refused() -> anyhow::Result<()> {
    let node = Node::start(TOWNSHIP).await?;
    let id = create_deputy(&node, deputy_fields("王丽")).await?;
    let other = create_deputy(&node, deputy_fields("李建国")).await?;
    let opened = open(&node, &id).await?;
    let before = node.store.log_len().await?;
    for version in [
        String::new(),
        "not a version".into(),
        open(&node, &other).await?.version,
    ] {
        assert_refused(
            save(
                &node,
                &dep::Deputy {
                    version,
                    ..opened.clone()
                },
                form(&opened),
            )
            .await,
            Code::InvalidArgument,
            "version",
        );
    }
    assert_eq!(node.store.log_len().await?, before);
    Ok(())
}

async fn suggestion(node: &Node, id: &str) -> anyhow::Result<sug::Suggestion> {
    Ok(SuggestionsClient::new(node.channel.clone())
        .get_suggestion(as_user(
            node.org,
            sug::GetSuggestionRequest { id: id.into() },
        ))
        .await?
        .into_inner())
}

async fn edit(
    node: &Node,
    opened: &sug::Suggestion,
    title: &str,
    co_signers: Vec<String>,
) -> anyhow::Result<sug::Suggestion> {
    Ok(SuggestionsClient::new(node.channel.clone())
        .update_suggestion(as_user(
            node.org,
            sug::UpdateSuggestionRequest {
                suggestion_id: opened.id.clone(),
                kind: opened.kind,
                title: title.into(),
                body: opened.body.clone(),
                co_signer_ids: co_signers,
                version: opened.version.clone(),
            },
        ))
        .await?
        .into_inner())
}

/// Co-signers are a set: a stale form that lists them as read neither brings back one removed
/// meanwhile nor drops one added meanwhile.
#[tokio::test]
async fn a_stale_form_keeps_co_signers_changed_meanwhile() -> anyhow::Result<()> {
    let (a, b) = (Node::start(TOWNSHIP).await?, Node::start(TOWNSHIP).await?);
    let lead = create_deputy(&a, deputy_fields("王芳")).await?;
    let kept = create_deputy(&a, deputy_fields("李建国")).await?;
    let dropped = create_deputy(&a, deputy_fields("张敏")).await?;
    let added = create_deputy(&a, deputy_fields("刘洋")).await?;
    let s = SuggestionsClient::new(a.channel.clone())
        .submit_suggestion(as_user(
            TOWNSHIP,
            sug::SubmitSuggestionRequest {
                kind: sug::SuggestionKind::Suggestion.into(),
                title: "关于增设社区公交线路的建议".into(),
                body: "建议增设社区公交线路，方便居民出行。".into(),
                lead_deputy_id: lead,
                co_signer_ids: vec![kept.clone(), dropped.clone()],
                on: date("2024-01-05"),
            },
        ))
        .await?
        .into_inner();
    exchange(&a, &b).await?;
    let opened_at_a = suggestion(&a, &s.id).await?;
    let at_b = suggestion(&b, &s.id).await?;
    edit(&b, &at_b, &at_b.title, vec![kept.clone(), added.clone()]).await?;
    exchange(&a, &b).await?;

    let title = "关于增设社区公交线路和站点的建议";
    edit(&a, &opened_at_a, title, opened_at_a.co_signer_ids.clone()).await?;
    exchange(&a, &b).await?;
    let mut expected = vec![kept, added];
    expected.sort();
    for node in [&a, &b] {
        let now = suggestion(node, &s.id).await?;
        let mut co = now.co_signer_ids.clone();
        co.sort();
        assert_eq!(co, expected, "at {}", node.org);
        assert_eq!(now.title, title);
    }
    Ok(())
}
