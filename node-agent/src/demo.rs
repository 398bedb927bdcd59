//! `node-agent demo`: the README's first command. A mesh of one city, two counties and four
//! townships on loopback with real mutual TLS and SQLite files; a township goes offline, the
//! same records are edited there and at its county, it comes back, and the demo prints what
//! converged, which conflicts wait for a person, and every node's sync state.

use std::path::PathBuf;

use anyhow::Context as _;
use renda_proto::deputy::v1 as deputy;
use renda_replica::OrgCode;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::mesh::Mesh;

pub const CITY: u64 = 370_200;
pub const COUNTIES: [u64; 2] = [370_202, 370_212];
pub const TOWNSHIPS: [u64; 4] = [370_202_001, 370_202_002, 370_212_001, 370_212_002];

/// The org units of the demo mesh, parents first.
pub fn orgs() -> anyhow::Result<Vec<OrgCode>> {
    std::iter::once(CITY)
        .chain(COUNTIES)
        .chain(TOWNSHIPS)
        .map(|code| OrgCode::new(code).map_err(anyhow::Error::from))
        .collect()
}

/// A logged-in person: every API call carries their signed token
/// (`authorization: Bearer …`), and the node reads who they are from it alone.
#[derive(Clone)]
pub struct Person {
    authorization: MetadataValue<tonic::metadata::Ascii>,
}

impl Person {
    /// A person holding `token` (from `Auth.Login`).
    pub fn with_token(token: &str) -> anyhow::Result<Person> {
        Ok(Person {
            authorization: format!("Bearer {token}")
                .parse()
                .context("a log-in token is ASCII")?,
        })
    }

    /// Logs in at the node behind `channel`.
    pub async fn login(channel: Channel, login: &str, password: &str) -> anyhow::Result<Person> {
        let reply = renda_proto::auth::v1::auth_client::AuthClient::new(channel)
            .login(renda_proto::auth::v1::LoginRequest {
                login: login.into(),
                password: password.into(),
            })
            .await
            .with_context(|| format!("logging in as {login}"))?
            .into_inner();
        Person::with_token(&reply.token)
    }
}

impl tonic::service::Interceptor for Person {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        Ok(request)
    }
}

/// The demo's log-ins: one deputy office per city and county, one clerk per township, all
/// with [`DEMO_PASSWORD`]. The console's README lists them.
pub fn demo_users() -> anyhow::Result<Vec<(String, renda_accounts::UserRole, OrgCode)>> {
    use renda_accounts::UserRole;
    let mut out = vec![(
        "city-office".to_owned(),
        UserRole::CityOffice,
        OrgCode::new(CITY)?,
    )];
    for c in COUNTIES {
        out.push((
            format!("office-{c}"),
            UserRole::CountyOffice,
            OrgCode::new(c)?,
        ));
    }
    for t in TOWNSHIPS {
        out.push((
            format!("clerk-{t}"),
            UserRole::TownshipClerk,
            OrgCode::new(t)?,
        ));
    }
    Ok(out)
}

/// The password of every demo log-in (never a real deployment's).
pub const DEMO_PASSWORD: &str = "renda-demo-2026";

/// Creates the demo's log-ins at the city (users reach every node of their unit's subtree by
/// sync), as `node-agent user add` does in a real deployment.
pub async fn create_demo_users(mesh: &Mesh) -> anyhow::Result<()> {
    let city = mesh.node(OrgCode::new(CITY)?)?;
    let ctx = renda_api::ApiContext::default();
    for (login, role, org) in demo_users()? {
        let org = renda_domain::org::OrgCode::parse(&org.to_string())
            .map_err(|e| anyhow::anyhow!("demo org {org}: {e}"))?;
        renda_api::users::bootstrap_user(&city.store, &ctx, &login, DEMO_PASSWORD, role, &org)
            .await
            .map_err(|e| anyhow::anyhow!("creating demo user {login}: {e}"))?;
    }
    Ok(())
}

pub type Deputies = deputy::deputies_client::DeputiesClient<InterceptedService<Channel, Person>>;

pub fn deputies(mesh: &Mesh, org: OrgCode, caller: Person) -> anyhow::Result<Deputies> {
    Ok(deputy::deputies_client::DeputiesClient::with_interceptor(
        mesh.channel(org)?,
        caller,
    ))
}

fn fields(
    name: &str,
    sector: &str,
    phone: &str,
    levels: &[deputy::DeputyLevel],
) -> deputy::DeputyFields {
    deputy::DeputyFields {
        name: name.into(),
        levels: levels.iter().map(|l| i32::from(*l)).collect(),
        constituency: "第三选区".into(),
        term: 5,
        gender: deputy::Gender::Female.into(),
        ethnicity: "汉族".into(),
        sector: sector.into(),
        phone: phone.into(),
        id_card: String::new(),
        status: deputy::DeputyStatus::Serving.into(),
    }
}

pub async fn run(keep: Option<PathBuf>) -> anyhow::Result<()> {
    let mut settings = renda_telemetry::Settings::new("node-agent-demo");
    settings.filter = Some("warn".into());
    let _telemetry = renda_telemetry::init(&settings)?;
    let temp;
    let dir = match keep {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            dir
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "== renda-mesh demo: 1 city, 2 counties, 4 townships on loopback, mutual TLS, SQLite in {}",
        dir.display()
    );
    let orgs = orgs()?;
    let mesh = Mesh::start(&dir, &orgs, crate::domain::deputy_work()).await?;
    for member in mesh.members.values() {
        println!(
            "   {:<8} {} nodes on {}, people on {}",
            member.node.store.org().level().as_str(),
            member.node.store.org(),
            member.node.grpc_addr,
            member.node.client_addr
        );
    }

    let township = OrgCode::new(TOWNSHIPS[0])?;
    let county = OrgCode::new(COUNTIES[0])?;
    let city = OrgCode::new(CITY)?;

    println!(
        "\n== 1. each level enters a season of deputy work (组织、代表、联络站、履职活动、社情民意、议案建议、民生实事票决), syncing as it goes"
    );
    let nodes: renda_demo::DemoStores = mesh
        .members
        .iter()
        .map(|(org, member)| {
            (
                org.to_string(),
                renda_demo::DemoNode {
                    store: member.node.store.clone(),
                    ctx: renda_api::ApiContext::new(renda_domain::org::OrgTree::demo()),
                },
            )
        })
        .collect();
    let summary = renda_demo::seed_demo(&nodes, &MeshSync(&mesh))
        .await
        .map_err(|e| anyhow::anyhow!("seeding the demo data failed: {e}"))?;
    print!("{}", indent(&summary.to_string()));
    let deputy_id = first_deputy(&mesh.node(township)?.store).await?;

    println!(
        "\n== 2. everyone syncs (乡镇 → 区县 → 市, and back down), and the log-ins reach their nodes"
    );
    create_demo_users(&mesh).await?;
    mesh.sync_all().await?;
    print_counts(&mesh).await?;
    let clerk = Person::login(
        mesh.channel(township)?,
        &format!("clerk-{township}"),
        DEMO_PASSWORD,
    )
    .await?;
    let office = Person::login(
        mesh.channel(county)?,
        &format!("office-{county}"),
        DEMO_PASSWORD,
    )
    .await?;

    println!(
        "\n== 3. township {township} loses its link; the same deputy is edited there and at county {county}"
    );
    mesh.node(township)?
        .sync
        .as_ref()
        .context("a township has an upstream")?
        .set_offline(true);
    let mut at_township = deputies(&mesh, township, clerk.clone())?;
    let mut at_county = deputies(&mesh, county, office.clone())?;
    let current = at_township
        .get_deputy(deputy::GetDeputyRequest {
            id: deputy_id.clone(),
        })
        .await?
        .into_inner();
    let mut edit = fields(
        &current.name,
        "乡村振兴",
        "13805320001",
        &[deputy::DeputyLevel::County, deputy::DeputyLevel::Township],
    );
    // Each office saves the form it opened: a version of the record as it read it.
    let opened_at_county = at_county
        .get_deputy(deputy::GetDeputyRequest {
            id: deputy_id.clone(),
        })
        .await?
        .into_inner()
        .version;
    at_township
        .update_deputy(deputy::UpdateDeputyRequest {
            id: deputy_id.clone(),
            fields: Some(edit.clone()),
            version: current.version.clone(),
        })
        .await?;
    edit.sector = "农业农村".into();
    at_county
        .update_deputy(deputy::UpdateDeputyRequest {
            id: deputy_id.clone(),
            fields: Some(edit),
            version: opened_at_county,
        })
        .await?;
    // Offline work goes on: a new deputy registered at the township.
    at_township
        .create_deputy(deputy::CreateDeputyRequest {
            org: township.to_string(),
            fields: Some(fields(
                "刘洋",
                "个体工商户",
                "13905321234",
                &[deputy::DeputyLevel::Township],
            )),
        })
        .await?;
    let offline = mesh
        .node(township)?
        .sync
        .as_ref()
        .context("upstream")?
        .sync_now()
        .await;
    println!(
        "   township tries to sync: {}",
        offline.err().unwrap_or_default()
    );
    mesh.sync_all().await?;

    println!("\n== 4. the link is back; everyone syncs again");
    mesh.node(township)?
        .sync
        .as_ref()
        .context("upstream")?
        .set_offline(false);
    mesh.sync_all().await?;
    print_counts(&mesh).await?;

    println!("\n== 5. what converged");
    let mut differing = 0;
    let township_store = &mesh.node(township)?.store;
    let mut records = Vec::new();
    for kind in township_store.schema().kinds() {
        let page = township_store
            .records_of_kind(kind.id, None, 100_000, 0)
            .await?;
        if !kind.local_only {
            records.extend(page.into_iter().map(|r| r.id));
        }
    }
    println!("   {} records at township {township}", records.len());
    for record in records {
        let here = township_store.record(record).await?;
        for other in [county, city] {
            let there = mesh.node(other)?.store.record(record).await?;
            if there.as_ref().map(|r| &r.view) != here.as_ref().map(|r| &r.view) {
                differing += 1;
                println!("   record {record} differs between {township} and {other}");
            }
        }
    }
    println!(
        "   every record of township {township} is identical at the township, county {county} and the city: {}",
        if differing == 0 { "yes" } else { "NO" }
    );

    println!("\n== 6. conflicts waiting for a person (冲突待人工处理), as every node shows them");
    for org in [township, county, city] {
        let store = &mesh.node(org)?.store;
        let names = renda_api::people::Directory::load(store, &renda_api::ApiContext::default())
            .await
            .map_err(|e| anyhow::anyhow!("reading names at {org}: {e}"))?;
        for record in store.conflicts(100).await? {
            for (field, conflict) in &record.conflicts {
                let values: Vec<String> = conflict
                    .values
                    .iter()
                    .map(|v| {
                        format!(
                            "{:?} written at {} by {} ({})",
                            v.value.to_string(),
                            v.stamp.org,
                            names.person(&v.stamp.author),
                            names.unit(v.stamp.author.org)
                        )
                    })
                    .collect();
                println!(
                    "   at {org}: {} {} field {field}: {}",
                    record.kind_name,
                    record.id,
                    values.join(" | ")
                );
            }
        }
    }

    println!("\n== 7. sync state, as the city sees the mesh");
    let mut client =
        renda_proto::sync::v1::replication_client::ReplicationClient::new(mesh.channel(city)?);
    let status = client
        .status(renda_proto::sync::v1::StatusRequest {})
        .await?
        .into_inner();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    print!("{}", crate::cli::render_status(&status, now));
    mesh.shutdown().await?;
    println!("\n== done");
    Ok(())
}

/// The demo mesh's sync, for the seeding that needs one between its phases.
struct MeshSync<'a>(&'a Mesh);

impl renda_demo::Mesh for MeshSync<'_> {
    fn sync(&self) -> impl std::future::Future<Output = Result<(), String>> + Send {
        let mesh = self.0;
        async move { mesh.sync_all().await.map_err(|e| format!("{e:#}")) }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}

/// A deputy registered at the township (the one whose record both levels will edit).
async fn first_deputy(store: &renda_store::Store) -> anyhow::Result<String> {
    let kind = store
        .schema()
        .kind_named("deputy")
        .context("the schema has deputies")?
        .id;
    let deputies = store.records_of_kind(kind, Some(store.org()), 1, 0).await?;
    Ok(deputies
        .first()
        .context("the township has no deputy")?
        .id
        .to_string())
}

async fn print_counts(mesh: &Mesh) -> anyhow::Result<()> {
    for member in mesh.members.values() {
        let store = &member.node.store;
        println!(
            "   {:<8} {:<9} {:>4} ops in log, {} held, {} quarantined",
            store.org().level().as_str(),
            store.org(),
            store.log_len().await?,
            store.held_count().await?,
            store.quarantine_count().await?
        );
    }
    Ok(())
}
