//! The bootstrap of a deployment through the `node-agent` binary, on a real SQLite store: the
//! city office imports its org tree (`org import`) and makes its first administrator
//! (`user add`). A list with one bad line writes nothing and says which line; a user outside
//! the node's subtree, with an unknown role or a short password is refused with the reason.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, ensure};
use renda_replica::OrgCode;

const BIN: &str = env!("CARGO_BIN_EXE_node-agent");

fn config(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join("city.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nlevel = \"city\"\norg_code = \"370200\"\ndata_dir = \"{dir}\"\n\n\
             [storage]\nurl = \"sqlite://{dir}/city.sqlite\"\n\n\
             [listen]\ngrpc = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\nclient = \"127.0.0.1:0\"\n\n\
             [tls]\ninsecure_dev = true\n\n\
             [auth]\ntoken_secret = \"bootstrap-test-secret-of-32-chars!!\"\n",
            dir = dir.display()
        ),
    )?;
    Ok(path)
}

/// Runs node-agent with `stdin` as its standard input and, if given, `password` in
/// `RENDA_NEW_USER_PASSWORD`.
fn run_with(args: &[&str], stdin: Option<&str>, password: Option<&str>) -> anyhow::Result<Output> {
    // Only what the command needs: a RENDA_ variable of the test run (RENDA_TEST_PG_URL) is
    // not a config key, and the node's config loader refuses those.
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    if let Some(password) = password {
        command.env("RENDA_NEW_USER_PASSWORD", password);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting node-agent")?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.unwrap_or("").as_bytes())?;
    }
    Ok(child.wait_with_output()?)
}

fn run(args: &[&str], stdin: Option<&str>) -> anyhow::Result<Output> {
    run_with(args, stdin, None)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn units_in(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let store = renda_store::Store::open(
        &format!("sqlite://{}/city.sqlite", dir.display()),
        std::sync::Arc::new(renda_api::schema()),
        OrgCode::new(370_200)?,
        renda_store::Options::default(),
    )
    .await?;
    let ctx = renda_api::ApiContext::default();
    let tree = ctx.refresh(&store).await?;
    store.close().await;
    Ok(tree
        .units()
        .map(|u| (u.code.to_string(), u.name.clone()))
        .collect())
}

#[tokio::test]
async fn a_city_imports_its_org_tree_and_makes_its_first_administrator() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = config(dir.path())?;
    let cfg = cfg.to_str().context("temp path is UTF-8")?;
    let import = |list: &Path| {
        run(
            &[
                "org",
                "import",
                "--config",
                cfg,
                list.to_str().unwrap_or(""),
            ],
            None,
        )
    };

    // One bad line (a five-digit code): nothing written, the line named.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "code,name\n370200,青岛市\n37020,市南区\n")?;
    let out = import(bad.as_path())?;
    ensure!(
        !out.status.success(),
        "a bad list must fail: {}",
        text(&out)
    );
    ensure!(
        text(&out).contains("bad.csv line 3: code"),
        "{}",
        text(&out)
    );
    ensure!(units_in(dir.path()).await?.len() <= 1, "nothing imported");

    // The list whole: the tree, named; a second import changes nothing.
    let good = dir.path().join("units.csv");
    std::fs::write(
        &good,
        "code,name\n370200,青岛市\n370202,市南区\n370202001,八大峡街道\n370212,崂山区\n",
    )?;
    let out = import(good.as_path())?;
    ensure!(out.status.success(), "{}", text(&out));
    ensure!(text(&out).contains("4 org units written"), "{}", text(&out));
    let units = units_in(dir.path()).await?;
    ensure!(
        units.contains(&("370200".into(), "青岛市".into()))
            && units.contains(&("370202001".into(), "八大峡街道".into()))
            && units.len() == 4,
        "{units:?}"
    );
    let out = import(good.as_path())?;
    ensure!(
        text(&out).contains("0 org units written, 4 already known"),
        "{}",
        text(&out)
    );

    // The first administrator; the password from standard input.
    let add = |login: &'static str, role: &'static str, org: &'static str| {
        vec![
            "user", "add", "--config", cfg, "--login", login, "--role", role, "--org", org,
        ]
    };
    let out = run(
        &add("qingdao", "city_office", "370200"),
        Some("a-long-password\n"),
    )?;
    ensure!(out.status.success(), "{}", text(&out));
    // The password from the environment instead; the config loader lets that variable be.
    let out = run_with(
        &add("shinan", "county_office", "370202"),
        None,
        Some("another-long-password"),
    )?;
    ensure!(
        out.status.success() && text(&out).contains("user shinan (county_office) made at 370202"),
        "{}",
        text(&out)
    );
    let out = run(
        &add("qingdao", "city_office", "370200"),
        Some("a-long-password\n"),
    )?;
    ensure!(
        !out.status.success() && text(&out).contains("taken already"),
        "{}",
        text(&out)
    );
    for (args, password, needle) in [
        (
            add("x1", "mayor", "370200"),
            "a-long-password\n",
            "--role \"mayor\"",
        ),
        (add("x2", "county_office", "370202"), "short\n", "password"),
        (
            add("x3", "county_office", "370203"),
            "a-long-password\n",
            "unknown org unit",
        ),
        (
            add("x4", "county_office", "370300"),
            "a-long-password\n",
            "outside this node",
        ),
    ] {
        let out = run(&args, Some(password))?;
        ensure!(
            !out.status.success() && text(&out).contains(needle),
            "{args:?}: {}",
            text(&out)
        );
    }
    Ok(())
}
