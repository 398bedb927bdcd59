//! Multi-process end-to-end tests: real node processes (city, county, townships) on loopback
//! with mutual TLS; links cut and healed; a node killed with SIGKILL in the middle of a sync.
//!
//! The binary has its own `main` (`harness = false`, see `renda_e2e::harness`): started with
//! `E2E_NODE_CONFIG` set it is a node process, otherwise it runs its scenarios as libtest
//! would, with the same flags (`--list`, filters, `--exact`, `--test-threads`, ...).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use node_agent::demo::Person;
use renda_accounts::UserRole;
use renda_e2e::cluster::Cluster;
use renda_e2e::orgs::{CITY, COUNTY, TOWNSHIP_A, TOWNSHIP_B, org};
use renda_e2e::wait::wait;
use renda_proto::deputy::v1 as deputy;
use renda_replica::OrgCode;

type Client = renda_proto::deputy::v1::deputies_client::DeputiesClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Person>,
>;

/// A person of `at` in `role` ("staff": the unit's clerk or deputy office; "viewer": read
/// only), calling `at`'s client port.
fn client(cluster: &Cluster, at: OrgCode, role: &'static str) -> anyhow::Result<Client> {
    let role = match (role, at.level()) {
        ("viewer", _) => UserRole::ReadOnly,
        (_, renda_replica::Level::City) => UserRole::CityOffice,
        (_, renda_replica::Level::County) => UserRole::CountyOffice,
        _ => UserRole::TownshipClerk,
    };
    Ok(deputy::deputies_client::DeputiesClient::with_interceptor(
        cluster.person_channel(at)?,
        renda_e2e::cluster::person(role, at)?,
    ))
}

fn fields(name: &str, sector: &str) -> deputy::DeputyFields {
    deputy::DeputyFields {
        name: name.into(),
        levels: vec![deputy::DeputyLevel::Township.into()],
        constituency: "第一选区".into(),
        term: 5,
        gender: deputy::Gender::Male.into(),
        ethnicity: "汉族".into(),
        sector: sector.into(),
        phone: "13805320000".into(),
        id_card: String::new(),
        status: deputy::DeputyStatus::Serving.into(),
    }
}

async fn create(client: &mut Client, at: OrgCode, name: &str) -> anyhow::Result<String> {
    Ok(client
        .create_deputy(deputy::CreateDeputyRequest {
            org: at.to_string(),
            fields: Some(fields(name, "农业")),
        })
        .await?
        .into_inner()
        .id)
}

/// The link is cut, both sides edit the same deputy, the link heals: every node converges to
/// the same state, and the concurrent edit is shown as the same conflict everywhere.
async fn partition_heals_and_every_node_converges() -> anyhow::Result<()> {
    let (city, county, a, b) = (org(CITY), org(COUNTY), org(TOWNSHIP_A), org(TOWNSHIP_B));
    let cluster = Cluster::start(&[city, county, a, b]).await?;
    let mut at_a = client(&cluster, a, "staff")?;
    let mut at_b = client(&cluster, b, "staff")?;
    let mut at_county = client(&cluster, county, "staff")?;
    let shared = create(&mut at_a, a, "王丽").await?;
    create(&mut at_a, a, "李建国").await?;
    create(&mut at_b, b, "张敏").await?;
    cluster.converged(&[a, county, city], a, 2).await?;
    cluster.converged(&[b, county, city], b, 1).await?;

    cluster.isolate(a);
    let opened = read(&mut at_a, &shared).await?;
    save(&mut at_a, &opened, |f| f.sector = "乡村振兴".into()).await?;
    create(&mut at_a, a, "刘洋").await?;
    let opened = read(&mut at_county, &shared).await?;
    save(&mut at_county, &opened, |f| f.sector = "农业农村".into()).await?;
    // While cut, the township keeps working and the others cannot see its new deputy, even
    // once the township has tried both its upstreams since it wrote.
    let written = chrono::Utc::now().timestamp_millis();
    let node = cluster.failed_attempts_since(a, written).await?;
    let apart = cluster.digest(county, a).await?;
    let township = cluster.digest(a, a).await?;
    ensure!(
        apart != township,
        "the township's offline work reached the county while cut"
    );
    ensure!(
        node.peers
            .iter()
            .any(|p| !p.online && !p.last_error.is_empty()),
        "the township's status shows no failed link while cut: {node:?}"
    );

    cluster.reconnect(a);
    let converged = cluster.converged(&[a, county, city], a, 3).await?;
    let units = Cluster::tree_records(a);
    ensure!(
        converged.records == 3 + units,
        "expected 3 deputies and {units} org unit, got {} records",
        converged.records
    );
    cluster.converged(&[b, county, city], b, 1).await?;
    for at in [a, county, city] {
        let deputy = client(&cluster, at, "viewer")?
            .get_deputy(deputy::GetDeputyRequest { id: shared.clone() })
            .await?
            .into_inner();
        ensure!(
            deputy.conflicting_fields.iter().any(|f| f == "sector"),
            "{at} does not show the sector conflict: {:?}",
            deputy.conflicting_fields
        );
    }
    Ok(())
}

async fn read(client: &mut Client, id: &str) -> anyhow::Result<deputy::Deputy> {
    Ok(client
        .get_deputy(deputy::GetDeputyRequest { id: id.into() })
        .await?
        .into_inner())
}

/// The deputy's form as it reads: the fields an update sends back.
fn form(d: &deputy::Deputy) -> deputy::DeputyFields {
    deputy::DeputyFields {
        name: d.name.clone(),
        levels: d.levels.clone(),
        constituency: d.constituency.clone(),
        term: d.term,
        gender: d.gender,
        ethnicity: d.ethnicity.clone(),
        sector: d.sector.clone(),
        phone: "13805320000".into(),
        id_card: String::new(),
        status: d.status,
    }
}

/// Saves the form `opened` showed, changed by `change`, against the version it read.
async fn save(
    client: &mut Client,
    opened: &deputy::Deputy,
    change: impl FnOnce(&mut deputy::DeputyFields),
) -> anyhow::Result<deputy::Deputy> {
    let mut fields = form(opened);
    change(&mut fields);
    Ok(client
        .update_deputy(deputy::UpdateDeputyRequest {
            id: opened.id.clone(),
            fields: Some(fields),
            version: opened.version.clone(),
        })
        .await?
        .into_inner())
}

/// Waits until deputy `id` as `client` reads it passes `check`.
async fn until_shown(
    client: &mut Client,
    id: &str,
    what: impl std::fmt::Display,
    check: impl Fn(&deputy::Deputy) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    wait(what)
        .within(Duration::from_secs(60))
        .until(async || check(&read(client, id).await?))
        .await
}

/// The county opens a deputy's form; meanwhile the township changes the deputy's sector and
/// it syncs; the county saves its form, changing only the constituency. Every node keeps the
/// township's sector and the county's constituency, with no conflict. Had the county changed
/// the sector too, both values are shown as a conflict everywhere.
async fn a_stale_form_save_keeps_the_edit_made_meanwhile() -> anyhow::Result<()> {
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let cluster = Cluster::start(&[city, county, a]).await?;
    let mut at_a = client(&cluster, a, "staff")?;
    let mut at_county = client(&cluster, county, "staff")?;
    let id = create(&mut at_a, a, "王丽").await?;
    cluster.converged(&[a, county, city], a, 1).await?;
    let opened = read(&mut at_county, &id).await?;

    let at_township = read(&mut at_a, &id).await?;
    save(&mut at_a, &at_township, |f| f.sector = "乡村振兴".into()).await?;
    until_shown(
        &mut at_county,
        &id,
        "the township's sector at the county",
        |d| {
            ensure!(d.sector == "乡村振兴", "the county shows {:?}", d.sector);
            Ok(())
        },
    )
    .await?;
    let saved = save(&mut at_county, &opened, |f| {
        f.constituency = "第二选区".into()
    })
    .await?;
    let both = |d: &deputy::Deputy| {
        ensure!(
            (d.sector.as_str(), d.constituency.as_str()) == ("乡村振兴", "第二选区")
                && d.conflicting_fields.is_empty(),
            "sector {:?}, constituency {:?}, conflicts {:?}",
            d.sector,
            d.constituency,
            d.conflicting_fields
        );
        Ok(())
    };
    both(&saved).context("the county's save")?;
    for at in [a, county, city] {
        let mut viewer = client(&cluster, at, "viewer")?;
        until_shown(
            &mut viewer,
            &id,
            format_args!("{at} to show both edits"),
            both,
        )
        .await?;
    }

    // The same stale form, changing the sector the township had changed: a conflict.
    let saved = save(&mut at_county, &opened, |f| f.sector = "农业农村".into()).await?;
    let conflict = |d: &deputy::Deputy| {
        ensure!(
            d.conflicting_fields == ["sector"] && d.constituency == "第二选区",
            "conflicts {:?}, constituency {:?}",
            d.conflicting_fields,
            d.constituency
        );
        Ok(())
    };
    conflict(&saved).context("the county's stale sector")?;
    for at in [a, city] {
        let mut viewer = client(&cluster, at, "viewer")?;
        let what = format_args!("{at} to show the sector conflict");
        until_shown(&mut viewer, &id, what, conflict).await?;
    }
    Ok(())
}

/// The number of operations in `node`'s log.
async fn log_ops(cluster: &Cluster, node: OrgCode) -> anyhow::Result<u64> {
    Ok(cluster.status(node).await?.self_.context("status")?.log_ops)
}

/// A county killed with SIGKILL while a township pushes a large backlog restarts and
/// converges: nothing lost, nothing applied twice.
async fn a_node_killed_mid_sync_restarts_and_converges() -> anyhow::Result<()> {
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let mut cluster = Cluster::start(&[city, county, a]).await?;
    // The county and the township first pull the org tree the city was bootstrapped with
    // (a pull still running when the link is cut would land in the township's count); from
    // then on the only new operations anywhere are the township's.
    wait("the county and the township to pull the org tree")
        .within(Duration::from_secs(60))
        .until(async || {
            let tree = log_ops(&cluster, city).await?;
            let (at_county, at_a) = (
                log_ops(&cluster, county).await?,
                log_ops(&cluster, a).await?,
            );
            ensure!(
                at_county >= tree && at_a >= tree,
                "the city holds {tree} operations, the county {at_county}, the township {at_a}"
            );
            Ok(())
        })
        .await?;
    cluster.isolate(a);
    let before_a = log_ops(&cluster, a).await?;
    let before = [
        (county, log_ops(&cluster, county).await?),
        (city, log_ops(&cluster, city).await?),
    ];
    let mut at_a = client(&cluster, a, "staff")?;
    let total = 600;
    for i in 0..total {
        create(&mut at_a, a, &format!("代表{i:03}")).await?;
    }
    let township_log = log_ops(&cluster, a).await? - before_a;
    cluster.reconnect(a);
    // Kill the county once it holds part of the backlog: in the middle of the sync.
    let held = wait("the county to receive part of the backlog")
        .within(Duration::from_secs(60))
        .every(Duration::from_millis(5))
        .until(async || {
            let held = log_ops(&cluster, county).await? - before[0].1;
            ensure!(held > 0, "the county holds none of it");
            Ok(held)
        })
        .await?;
    if held >= township_log {
        bail!("the sync finished before the county could be killed");
    }
    cluster.kill(county)?;
    println!("   killed the county with {held} of {township_log} operations applied");
    cluster.restart(county).await?;
    cluster.converged(&[a, county, city], a, total).await?;
    for (node, before) in before {
        let log = log_ops(&cluster, node).await? - before;
        ensure!(
            log == township_log,
            "{node} holds {log} operations, the township made {township_log}: something was \
             lost or applied twice"
        );
    }
    Ok(())
}

/// How many operations `org`'s agent logged as pushed in its sync rounds, in the log after
/// byte `from`.
fn pushed_since(cluster: &Cluster, org: OrgCode, from: usize) -> u64 {
    let log = cluster.log(org);
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("synced"))
        .filter_map(|l| {
            let rest = &l[l.find("pushed=")? + "pushed=".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// A township cut off for days carries its work to the county on a USB bundle (`node-agent
/// bundle export`, then `bundle import` at the county, both nodes running); when its link
/// returns it pushes only what it wrote after the bundle, not the bundle's operations again.
async fn a_bundle_carried_up_is_not_pushed_again_when_the_link_returns() -> anyhow::Result<()> {
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let cluster = Cluster::start(&[city, county, a]).await?;
    let mut at_a = client(&cluster, a, "staff")?;
    create(&mut at_a, a, "联网时录入").await?;
    cluster.converged(&[a, county, city], a, 1).await?;
    cluster.isolate(a);
    let before = log_ops(&cluster, a).await?;
    for i in 0..40 {
        create(&mut at_a, a, &format!("离线代表{i:02}")).await?;
    }
    let carried = log_ops(&cluster, a).await? - before;
    let file = cluster.dir().join("offline-work.bundle");
    node_agent::cli::bundle_export(&cluster.config(a)?, county, &file, false).await?;
    let county_before = log_ops(&cluster, county).await?;
    node_agent::cli::bundle_import(&cluster.config(county)?, &file).await?;
    ensure!(
        log_ops(&cluster, county).await? - county_before == carried,
        "the county did not apply the bundle's {carried} operations"
    );
    // Written after the bundle left: these go up by the link.
    let after_bundle = log_ops(&cluster, a).await?;
    for i in 0..3 {
        create(&mut at_a, a, &format!("返回后{i}")).await?;
    }
    let later = log_ops(&cluster, a).await? - after_bundle;
    let mark = cluster.log(a).len();
    cluster.reconnect(a);
    cluster.converged(&[a, county, city], a, 44).await?;
    let pushed = wait("the township's rounds after the link returned to be logged")
        .within(Duration::from_secs(30))
        .until(async || {
            let pushed = pushed_since(&cluster, a, mark);
            ensure!(
                pushed >= later,
                "pushed {pushed} of the {later} written since"
            );
            Ok(pushed)
        })
        .await?;
    ensure!(
        pushed == later,
        "the township pushed {pushed} operations when its link returned: the {later} written \
         after the bundle, and {} of the {carried} the bundle carried",
        pushed - later
    );
    Ok(())
}

/// With its county down, a township syncs with the city directly.
async fn a_township_falls_back_to_the_city_when_its_county_is_down() -> anyhow::Result<()> {
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let mut cluster = Cluster::start(&[city, county, a]).await?;
    cluster.kill(county)?;
    let mut at_a = client(&cluster, a, "staff")?;
    create(&mut at_a, a, "赵强").await?;
    cluster.converged(&[a, city], a, 1).await?;
    let status = cluster.status(a).await?.self_.context("status")?;
    let county_link = status
        .peers
        .iter()
        .find(|p| p.peer_org_code == county.to_string())
        .context("the township keeps state for its county")?;
    ensure!(
        !county_link.online,
        "the county link shows online while the county is down"
    );
    cluster.restart(county).await?;
    cluster.converged(&[a, county, city], a, 1).await?;
    Ok(())
}

/// A township that pulled its county's edit falls back to the city while the county is down
/// and the edit has not yet gone up: it sends the city only what originated in its own
/// subtree, so the city refuses nothing and keeps no quarantine entry; the county sends its
/// edit itself once it is back.
async fn a_fallback_to_the_city_leaves_no_false_quarantine() -> anyhow::Result<()> {
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let mut cluster = Cluster::start(&[city, county, a]).await?;
    let mut at_a = client(&cluster, a, "staff")?;
    let id = create(&mut at_a, a, "王丽").await?;
    cluster.converged(&[a, county, city], a, 1).await?;
    // The county's own edit reaches the township but not the city.
    cluster.link(county, city)?.cut();
    let mut at_county = client(&cluster, county, "staff")?;
    let opened = read(&mut at_county, &id).await?;
    save(&mut at_county, &opened, |f| {
        f.constituency = "第二选区".into()
    })
    .await?;
    until_shown(&mut at_a, &id, "the county's edit at the township", |d| {
        ensure!(
            d.constituency == "第二选区",
            "the township shows {:?}",
            d.constituency
        );
        Ok(())
    })
    .await?;
    cluster.kill(county)?;
    let later = create(&mut at_a, a, "赵强").await?;
    let mut at_city = client(&cluster, city, "viewer")?;
    wait("the township's new deputy to reach the city by the fallback")
        .within(Duration::from_secs(90))
        .until(async || read(&mut at_city, &later).await.map(|_| ()))
        .await?;
    let no_quarantine = async |cluster: &Cluster| {
        let status = cluster.status(city).await?.self_.context("status")?;
        ensure!(
            status.quarantined_ops == 0,
            "the city quarantined {} operations",
            status.quarantined_ops
        );
        anyhow::Ok(())
    };
    no_quarantine(&cluster)
        .await
        .context("nothing the township relayed from its county")?;
    cluster.restart(county).await?;
    cluster.link(county, city)?.heal();
    cluster.converged(&[a, county, city], a, 2).await?;
    let d = read(&mut at_city, &id).await?;
    ensure!(
        d.constituency == "第二选区",
        "the county's edit reached the city itself"
    );
    no_quarantine(&cluster).await?;
    Ok(())
}

/// One sync from a township through its county to the city shows as one trace at an OTLP
/// collector: spans from all three node processes under one trace id.
async fn a_three_level_sync_is_one_trace() -> anyhow::Result<()> {
    use renda_telemetry::collector::{Collector, TraceServiceServer};
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let cluster = Cluster::start_with(&[city, county, a], Some(&endpoint)).await?;
    let mut at_a = client(&cluster, a, "staff")?;
    create(&mut at_a, a, "孙红").await?;
    cluster.converged(&[a, county, city], a, 1).await?;
    // Spans are exported in batches every few seconds.
    wait("one trace with spans of all three nodes")
        .every(Duration::from_millis(500))
        .until(async || {
            let spans = collector.spans();
            let mut traces: std::collections::BTreeMap<
                Vec<u8>,
                std::collections::BTreeSet<String>,
            > = Default::default();
            for span in &spans {
                traces
                    .entry(span.trace_id.clone())
                    .or_default()
                    .insert(span.node.clone());
            }
            let three = [a, county, city].map(|o| o.to_string());
            ensure!(
                traces
                    .values()
                    .any(|nodes| three.iter().all(|n| nodes.contains(n))),
                "{} spans in {} traces, e.g. {:?}",
                spans.len(),
                traces.len(),
                traces.values().take(5).collect::<Vec<_>>()
            );
            Ok(())
        })
        .await?;
    drop(cluster);
    server.abort();
    Ok(())
}

/// Trust at real node processes: at a county, a township's node certificate with declared
/// caller metadata, a node certificate alone and another county's clerk are refused with
/// nothing stored, while the county's own office works through the client port.
async fn a_county_process_serves_only_verified_people() -> anyhow::Result<()> {
    const OTHER_TOWNSHIP: u64 = 370_212_001;
    let (city, county, a) = (org(CITY), org(COUNTY), org(TOWNSHIP_A));
    let cluster = Cluster::start(&[city, county, a]).await?;
    let before = log_ops(&cluster, county).await?;
    let forged_request = || {
        let mut req = tonic::Request::new(deputy::CreateDeputyRequest {
            org: county.to_string(),
            fields: Some(fields("冒名代表", "农业")),
        });
        for (k, v) in [
            ("x-renda-user", "1"),
            ("x-renda-org", "370202"),
            ("x-renda-role", "deputy_office"),
        ] {
            req.metadata_mut()
                .insert(k, v.parse().expect("ascii metadata"));
        }
        req
    };
    let mut as_node = deputy::deputies_client::DeputiesClient::new(cluster.channel(a)?);
    let forged = as_node.create_deputy(forged_request()).await;
    ensure!(
        forged.as_ref().err().map(tonic::Status::code) == Some(tonic::Code::Unauthenticated),
        "declared metadata must be refused: {forged:?}"
    );
    let bare = as_node
        .create_deputy(deputy::CreateDeputyRequest {
            org: county.to_string(),
            fields: Some(fields("节点代表", "农业")),
        })
        .await;
    ensure!(
        bare.as_ref().err().map(tonic::Status::code) == Some(tonic::Code::Unauthenticated),
        "a node certificate alone must be refused: {bare:?}"
    );
    let mut outsider = deputy::deputies_client::DeputiesClient::with_interceptor(
        cluster.person_channel(county)?,
        renda_e2e::cluster::person(UserRole::TownshipClerk, org(OTHER_TOWNSHIP))?,
    );
    let foreign = outsider
        .list_deputies(deputy::ListDeputiesRequest::default())
        .await;
    ensure!(
        foreign.as_ref().err().map(tonic::Status::code) == Some(tonic::Code::PermissionDenied),
        "another county's clerk must be refused: {foreign:?}"
    );
    ensure!(
        log_ops(&cluster, county).await? == before,
        "a refused call stored something at the county"
    );
    let mut office = client(&cluster, county, "staff")?;
    create(&mut office, county, "区级代表").await?;
    ensure!(log_ops(&cluster, county).await? > before);
    Ok(())
}

fn main() -> ExitCode {
    renda_e2e::harness::main(renda_e2e::scenarios![
        partition_heals_and_every_node_converges,
        a_stale_form_save_keeps_the_edit_made_meanwhile,
        a_node_killed_mid_sync_restarts_and_converges,
        a_township_falls_back_to_the_city_when_its_county_is_down,
        a_fallback_to_the_city_leaves_no_false_quarantine,
        a_bundle_carried_up_is_not_pushed_again_when_the_link_returns,
        a_three_level_sync_is_one_trace,
        a_county_process_serves_only_verified_people,
    ])
}
