//! The web console in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! against an in-process mesh (city, county, one township) with real mutual TLS between nodes.
//!
//! A township clerk logs in and enters a deputy (first with a mistake the API refuses, shown
//! beside the field with everything typed kept), an opinion and a station; a sync carries them
//! to the county, whose clerk sees the deputy and a changed dashboard; the same deputy and the
//! same station are then renamed at the township (offline) and at the county, the sync shows
//! both conflicts at the county with both values, and the county clerk keeps one value of the
//! deputy's name and types a new name for the station (first one the API refuses, shown beside
//! the input with the typed value kept); the next sync brings both choices back down. Last, a
//! city clerk sees the city dashboard with the freshness of every township's data.
//! Screenshots of the main views go to `target/console-screenshots/`.
//!
//! Skipped, with a message, only when `/usr/bin/chromium` is absent outside CI (with `CI` set,
//! as `.ci/run` runs, a missing browser fails the test).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use node_agent::mesh::Mesh;
use renda_accounts::UserRole;
use renda_domain::org::OrgCode as DOrg;
use renda_e2e::wait::wait;
use renda_replica::OrgCode;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

const TOWNSHIP_LOGIN: (&str, &str) = ("badaxia", "badaxia-clerk-1");
const COUNTY_LOGIN: (&str, &str) = ("shinan", "shinan-office-1");
const CITY_LOGIN: (&str, &str) = ("qingdao", "qingdao-office-1");

const STATION: &str = "八大峡代表联络站";
const STATION_AT_TOWNSHIP: &str = "八大峡代表之家";
const STATION_AT_COUNTY: &str = "八大峡人大代表联络站";
const STATION_SETTLED: &str = "八大峡街道人大代表之家";

fn screenshots_dir() -> PathBuf {
    // The tests crate sits one level below the workspace root; honour CARGO_TARGET_DIR.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

/// A running chromedriver; dropping it kills the process (`kill_on_drop`).
struct Driver {
    _child: tokio::process::Child,
    port: u16,
}

async fn start_chromedriver() -> anyhow::Result<Driver> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| {
            format!(
                "starting {CHROMEDRIVER} (Debian package chromium-driver, installed by .ci/run)"
            )
        })?;
    wait(format_args!("chromedriver to listen on {port}"))
        .within(Duration::from_secs(20))
        .until(async || Ok(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?))
        .await?;
    Ok(Driver {
        _child: child,
        port,
    })
}

async fn browser(driver: &Driver, profile: &Path) -> anyhow::Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1366,1000", "--lang=zh-CN",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    Ok(ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await?)
}

/// Helpers over one browser session.
struct Page<'a> {
    c: &'a Client,
    shots: &'a Path,
}

impl Page<'_> {
    async fn wait_css(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        let found = self
            .c
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(el) => Ok(el),
            Err(e) => {
                let url = self.c.current_url().await.map(|u| u.to_string());
                bail!("waiting for {css} at {url:?}: {e}")
            }
        }
    }

    /// The text of `css`, or an empty one while it is not on the page.
    async fn text(&self, css: &str) -> String {
        match self.c.find(Locator::Css(css)).await {
            Ok(el) => el.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn wait_text(&self, css: &str, needle: &str) -> anyhow::Result<String> {
        wait(format_args!("{css} to show {needle:?}"))
            .within(Duration::from_secs(15))
            .every(Duration::from_millis(150))
            .until(async || {
                let text = self.text(css).await;
                ensure!(text.contains(needle), "it shows {text:?}");
                Ok(text)
            })
            .await
    }

    async fn wait_nonempty(&self, css: &str) -> anyhow::Result<String> {
        wait(format_args!("{css} to show a text"))
            .within(Duration::from_secs(15))
            .every(Duration::from_millis(150))
            .until(async || {
                let text = self.text(css).await;
                ensure!(!text.trim().is_empty(), "it is empty");
                Ok(text)
            })
            .await
    }

    async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.wait_css(css).await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.wait_css(css).await?.click().await?;
        Ok(())
    }

    async fn value(&self, css: &str) -> anyhow::Result<String> {
        Ok(self
            .wait_css(css)
            .await?
            .prop("value")
            .await?
            .unwrap_or_default())
    }

    async fn shot(&self, name: &str) -> anyhow::Result<()> {
        // Let charts and the sync badge finish drawing.
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.c.execute("window.scrollTo(0, 0)", vec![]).await?;
        let png = self.c.screenshot().await?;
        let path = self.shots.join(name);
        std::fs::write(&path, png).with_context(|| format!("writing {}", path.display()))?;
        println!("screenshot: {}", path.display());
        Ok(())
    }

    /// A screenshot of the whole page, not only the window: the window grows to the page's
    /// height for the shot and shrinks back after.
    async fn shot_full(&self, name: &str) -> anyhow::Result<()> {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (width, height) = self.c.get_window_size().await?;
        let page_height = self
            .c
            .execute("return document.documentElement.scrollHeight", vec![])
            .await?
            .as_u64()
            .unwrap_or(height);
        let size = |n: u64| u32::try_from(n).context("window size out of range");
        // Window chrome takes some height of the window besides the page.
        let tall = page_height.saturating_add(120).max(height);
        self.c.set_window_size(size(width)?, size(tall)?).await?;
        let result = self.shot(name).await;
        self.c.set_window_size(size(width)?, size(height)?).await?;
        result
    }

    async fn login(&self, base: &str, (login, password): (&str, &str)) -> anyhow::Result<()> {
        self.c.goto(&format!("{base}/#/login")).await?;
        self.fill("#f-login", login).await?;
        self.fill("#f-password", password).await?;
        self.click("#login-button").await?;
        self.wait_text("#who", "退出").await?;
        Ok(())
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.c.goto(url).await?;
        // A hash change within the same page does not reload it; make every visit fresh.
        self.c.refresh().await?;
        Ok(())
    }

    async fn kpi(&self, id: &str) -> anyhow::Result<i64> {
        let text = self.wait_css(&format!("#{id} .v")).await?.text().await?;
        text.trim()
            .parse()
            .with_context(|| format!("{id} shows {text:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_township_entry_county_conflict_and_dashboard() -> anyhow::Result<()> {
    if !Path::new(CHROMIUM).exists() {
        // CI installs Chromium (.ci/run): there a missing browser is a failure, not a skip.
        anyhow::ensure!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} is absent under CI; .ci/run installs chromium and chromium-driver"
        );
        eprintln!(
            "SKIPPED console browser test: {CHROMIUM} is absent (apt-get install chromium \
             chromium-driver; .ci/run installs them)"
        );
        return Ok(());
    }
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots)?;
    let dir = tempfile::tempdir()?;
    let city: OrgCode = "370200".parse()?;
    let county: OrgCode = "370202".parse()?;
    let township: OrgCode = "370202001".parse()?;
    let mesh = Mesh::start(
        &dir.path().join("mesh"),
        &[city, county, township],
        node_agent::domain::deputy_work(),
    )
    .await?;
    // The city office's bootstrap: the org tree (as `node-agent org import` writes it), synced
    // down, then one user per node (as `node-agent user add`).
    let units = renda_domain::org::OrgTree::demo().named_units();
    // A context per store: its cache of the org tree follows one store's op log.
    let ctx = renda_api::ApiContext::default;
    renda_api::org::bootstrap_units(&mesh.node(city)?.store, &ctx(), &units).await?;
    mesh.sync_all().await?;
    renda_api::users::bootstrap_user(
        &mesh.node(county)?.store,
        &ctx(),
        COUNTY_LOGIN.0,
        COUNTY_LOGIN.1,
        UserRole::CountyOffice,
        &DOrg::parse("370202")?,
    )
    .await?;
    renda_api::users::bootstrap_user(
        &mesh.node(city)?.store,
        &ctx(),
        CITY_LOGIN.0,
        CITY_LOGIN.1,
        UserRole::CityOffice,
        &DOrg::parse("370200")?,
    )
    .await?;
    renda_api::users::bootstrap_user(
        &mesh.node(township)?.store,
        &ctx(),
        TOWNSHIP_LOGIN.0,
        TOWNSHIP_LOGIN.1,
        UserRole::TownshipClerk,
        &DOrg::parse("370202001")?,
    )
    .await?;
    mesh.sync_all().await?;
    let http = |org| -> anyhow::Result<u16> {
        Ok(mesh
            .node(org)?
            .http_addr
            .context("the node serves no console")?
            .port())
    };
    // Different host names, so the two consoles' session cookies stay apart in one browser.
    let township_url = format!("http://127.0.0.1:{}", http(township)?);
    let county_url = format!("http://localhost:{}", http(county)?);
    // The city is visited last, once the township's console is no longer needed: it shares
    // the township's host name, so its log-in replaces the township's cookie.
    let city_url = format!("http://127.0.0.1:{}", http(city)?);

    let driver = start_chromedriver().await?;
    let client = browser(&driver, &dir.path().join("chromium-profile")).await?;
    let result = drive(
        &Page {
            c: &client,
            shots: &shots,
        },
        &mesh,
        township,
        &Urls {
            township: &township_url,
            county: &county_url,
            city: &city_url,
        },
    )
    .await;
    if result.is_err() {
        let _ = Page {
            c: &client,
            shots: &shots,
        }
        .shot("failure.png")
        .await;
    }
    client.close().await?;
    drop(driver);
    mesh.shutdown().await?;
    println!("console screenshots are in {}", shots.display());
    result
}

/// Keeps one operation aside at `store` as refused on receipt from `township`; its entry id.
async fn quarantine_one(store: &renda_store::Store, township: OrgCode) -> anyhow::Result<i64> {
    let schema = store.schema().clone();
    let kind = schema.kind_named("deputy").context("deputy kind")?.id;
    let mut replica = renda_replica::Replica::new(renda_replica::ActorId(0x7e57), township, schema);
    let op = replica.put(
        renda_replica::RecordId(uuid::Uuid::now_v7()),
        kind,
        renda_replica::schema::ORG,
        renda_replica::Value::Org(township),
        1_700_000_000_000,
    )?;
    let refuse =
        |_: &renda_replica::Op, _: Option<OrgCode>| Err("outside the sender's subtree".to_string());
    store
        .apply_batch(&[op.encode()], Some(&township.to_string()), &refuse)
        .await?;
    let entries = store.quarantine(10).await?;
    entries
        .first()
        .map(|q| q.id)
        .context("the operation was kept aside")
}

/// Where each node's console is.
struct Urls<'a> {
    township: &'a str,
    county: &'a str,
    city: &'a str,
}

/// The hash of the record page the browser shows (`/record/<id>`).
async fn record_hash(page: &Page<'_>) -> anyhow::Result<String> {
    let url = page.c.current_url().await?.to_string();
    url.split_once('#')
        .map(|(_, h)| h.to_owned())
        .filter(|h| h.starts_with("/record/"))
        .with_context(|| format!("{url} is not a record page"))
}

/// Renames a deputy or station on its record page, and waits for the page to show it.
async fn rename(page: &Page<'_>, url: &str, name: &str) -> anyhow::Result<()> {
    page.goto(url).await?;
    page.fill("form[id^=form-edit] #f-name", name).await?;
    page.click("form[id^=form-edit] button[type=submit]")
        .await?;
    page.wait_text("#main", name).await?;
    Ok(())
}

async fn drive(
    page: &Page<'_>,
    mesh: &Mesh,
    township: OrgCode,
    urls: &Urls<'_>,
) -> anyhow::Result<()> {
    let (township_url, county_url) = (urls.township, urls.county);
    // The county dashboard before the township's work arrives.
    page.login(county_url, COUNTY_LOGIN).await?;
    page.goto(&format!("{county_url}/#/dash")).await?;
    let deputies_before = page.kpi("kpi-deputies").await?;
    let opinions_before = page.kpi("kpi-opinions").await?;

    // Township: the login page, a wrong password, then the clerk.
    page.goto(&format!("{township_url}/#/login")).await?;
    page.wait_css("#login-form").await?;
    page.shot("01-login.png").await?;
    page.fill("#f-login", TOWNSHIP_LOGIN.0).await?;
    page.fill("#f-password", "not the password").await?;
    page.click("#login-button").await?;
    page.wait_text("#err-password", "用户名或密码错误").await?;
    page.login(township_url, TOWNSHIP_LOGIN).await?;

    // A deputy with a malformed ID-card number: the API's refusal in Chinese beside the field,
    // and nothing typed is lost.
    page.goto(&format!("{township_url}/#/entry/deputy")).await?;
    page.fill("#f-name", "李春梅").await?;
    page.click("#f-levels input[value=DEPUTY_LEVEL_TOWNSHIP]")
        .await?;
    page.fill("#f-constituency", "八大峡第三选区").await?;
    page.fill("#f-term", "18").await?;
    page.c
        .find(Locator::Css("#f-gender option[value=GENDER_FEMALE]"))
        .await?
        .click()
        .await?;
    page.fill("#f-sector", "社区工作者").await?;
    page.fill("#f-phone", "13800138000").await?;
    page.fill("#f-id_card", "12345").await?;
    page.click("#save-deputy").await?;
    let message = page.wait_nonempty("#err-id_card").await?;
    ensure!(
        message
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "the ID-card error is not in Chinese: {message:?}"
    );
    ensure!(
        page.value("#f-name").await? == "李春梅",
        "the name was lost on an error"
    );
    ensure!(
        page.value("#f-constituency").await? == "八大峡第三选区",
        "the constituency was lost"
    );
    page.shot("02-township-entry-error.png").await?;
    page.fill("#f-id_card", "").await?;
    page.click("#save-deputy").await?;
    page.wait_text("#ok-msg", "已保存").await?;
    page.wait_text("#list", "李春梅").await?;
    page.wait_text("#sync", "待上传").await?;
    page.shot("02-township-entry.png").await?;

    // An opinion raised at the township.
    page.goto(&format!("{township_url}/#/entry/opinion"))
        .await?;
    page.fill("#f-content", "八大峡菜市场周边夜间照明不足，建议增设路灯")
        .await?;
    page.c
        .find(Locator::Css("#f-source option[value=OPINION_SOURCE_VISIT]"))
        .await?
        .click()
        .await?;
    page.click("#save-opinion").await?;
    page.wait_text("#ok-msg", "已保存").await?;

    // A station, whose register the county may correct too.
    page.goto(&format!("{township_url}/#/entry/station"))
        .await?;
    page.fill("#f-name", STATION).await?;
    page.c
        .find(Locator::Css("#f-kind option[value=STATION_KIND_STATION]"))
        .await?
        .click()
        .await?;
    page.fill("#f-address", "八大峡街道团岛二路1号").await?;
    page.click("#save-station").await?;
    page.wait_text("#ok-msg", "已保存").await?;
    page.c
        .find(Locator::XPath(&format!(
            "//div[@id='list']//tr[contains(., '{STATION}')]"
        )))
        .await?
        .click()
        .await?;
    page.wait_text("#history", "370202001").await?;
    let station_hash = record_hash(page).await?;
    let station_id = station_hash.trim_start_matches("/record/").to_owned();

    mesh.sync_all().await?;

    // County: the township's sync state, the new deputy, and a changed dashboard.
    page.goto(&format!("{county_url}/#/county")).await?;
    let row = page.wait_text("#townships", "八大峡街道").await?;
    ensure!(
        row.contains("在线"),
        "the township is not shown online: {row}"
    );
    page.shot("03-county-overview.png").await?;
    page.goto(&format!("{county_url}/#/entry/deputy")).await?;
    page.wait_text("#list", "李春梅").await?;
    page.goto(&format!("{county_url}/#/dash")).await?;
    let deputies_after = page.kpi("kpi-deputies").await?;
    let opinions_after = page.kpi("kpi-opinions").await?;
    ensure!(
        deputies_after == deputies_before + 1 && opinions_after == opinions_before + 1,
        "the county dashboard did not change: deputies {deputies_before} -> {deputies_after}, \
         opinions {opinions_before} -> {opinions_after}"
    );
    page.wait_css("#chart-suggestions svg").await?;
    page.shot("05-county-dashboard.png").await?;

    // The deputy's record page, with its history, at the county.
    page.goto(&format!("{county_url}/#/entry/deputy")).await?;
    page.click("#list tr.click").await?;
    page.wait_text("#history", "370202001").await?;
    let record_hash = record_hash(page).await?;

    // A conflict: the township goes offline and both sides rename the same deputy.
    let sync = mesh
        .node(township)?
        .sync
        .clone()
        .context("the township has an upstream")?;
    sync.set_offline(true);
    page.goto(&format!("{township_url}/#{record_hash}")).await?;
    page.fill("form[id^=form-edit] #f-name", "李春美").await?;
    page.click("form[id^=form-edit] button[type=submit]")
        .await?;
    page.wait_text("#main", "李春美").await?;
    page.wait_text("#sync-state", "离线").await?;
    page.wait_text("#sync", "待上传 1").await?;
    page.shot("04-township-offline-edit.png").await?;
    rename(
        page,
        &format!("{township_url}/#{station_hash}"),
        STATION_AT_TOWNSHIP,
    )
    .await?;
    page.wait_text("#sync", "待上传 2").await?;

    page.goto(&format!("{county_url}/#{record_hash}")).await?;
    page.fill("form[id^=form-edit] #f-name", "李淑梅").await?;
    page.click("form[id^=form-edit] button[type=submit]")
        .await?;
    page.wait_text("#main", "李淑梅").await?;
    rename(
        page,
        &format!("{county_url}/#{station_hash}"),
        STATION_AT_COUNTY,
    )
    .await?;

    sync.set_offline(false);
    mesh.sync_all().await?;
    let quarantined = quarantine_one(
        &mesh
            .node(township.parent().context("a township has a county")?)?
            .store,
        township,
    )
    .await?;

    page.goto(&format!("{county_url}/#/county")).await?;
    // The quarantined operation: dismissing it needs a reason; with one it moves to the
    // settled list with who and why.
    let row = format!("#quarantine tr[data-id='{quarantined}']");
    page.wait_text(&row, "outside the sender").await?;
    page.click(&format!("{row} button.dismiss")).await?;
    let message = page.wait_nonempty(&format!("{row} .dismiss-error")).await?;
    ensure!(
        message.contains("请填写处理理由"),
        "dismissing without a reason is not refused in Chinese: {message:?}"
    );
    page.fill(&format!("{row} input.dismiss-reason"), "测试数据，已核实")
        .await?;
    page.click(&format!("{row} button.dismiss")).await?;
    page.wait_css("#no-quarantine").await?;
    let settled = page
        .wait_text("#quarantine-settled", "测试数据，已核实")
        .await?;
    ensure!(settled.contains("人工处理"), "{settled}");
    page.shot("04-county-quarantine-settled.png").await?;
    let conflicts = page.wait_text("#conflicts", "李春美").await?;
    ensure!(
        conflicts.contains("李淑梅") && conflicts.contains("八大峡街道"),
        "the conflict does not show both values and where they were written: {conflicts}"
    );
    page.shot("04-county-conflict.png").await?;
    let station_card = format!("#conflicts .conflict[data-record='{station_id}']");
    let station_conflict = page.wait_text(&station_card, STATION_AT_TOWNSHIP).await?;
    ensure!(
        station_conflict.contains(STATION_AT_COUNTY) && station_conflict.contains("保留此值"),
        "the station's conflict does not show both names with a button each: {station_conflict}"
    );
    page.shot("04-county-conflict.png").await?;

    // The deputy: keep the township's value.
    page.click("#conflicts button.keep[data-value='李春美']")
        .await?;
    wait("the deputy's conflict to go after keeping a value")
        .within(Duration::from_secs(15))
        .every(Duration::from_millis(150))
        .until(async || {
            let conflicts = page
                .c
                .find(Locator::Css("#conflicts"))
                .await?
                .text()
                .await?;
            ensure!(!conflicts.contains("李淑梅"), "it shows {conflicts:?}");
            Ok(())
        })
        .await?;

    // The station: a new name, first one longer than the register allows. The API's refusal
    // shows beside the input in Chinese, and the typed name stays.
    let input = format!("{station_card} input.new-value");
    let too_long = "八大峡街道人大代表之家".repeat(5) + "（团岛二路一号，新址）";
    page.fill(&input, &too_long).await?;
    page.click(&format!("{station_card} button.resolve-new"))
        .await?;
    let message = page
        .wait_nonempty(&format!("{station_card} .resolve-error"))
        .await?;
    ensure!(
        message.contains("不得超过50个字符"),
        "the refusal of a too long name is not shown in Chinese beside the input: {message:?}"
    );
    ensure!(
        page.value(&input).await? == too_long,
        "the typed name was lost on an error"
    );
    page.shot("04-county-conflict-error.png").await?;
    page.fill(&input, STATION_SETTLED).await?;
    page.click(&format!("{station_card} button.resolve-new"))
        .await?;
    page.wait_css("#no-conflicts").await?;
    page.shot("04-county-conflict-resolved.png").await?;
    page.goto(&format!("{county_url}/#{station_hash}")).await?;
    page.wait_text("#history", STATION_SETTLED).await?;

    // The choices go back down: the township shows them, without a conflict.
    mesh.sync_all().await?;
    for (hash, name) in [(&record_hash, "李春美"), (&station_hash, STATION_SETTLED)] {
        page.goto(&format!("{township_url}/#{hash}")).await?;
        let fields = page.wait_text("#main", name).await?;
        ensure!(
            !fields.contains("待处理的冲突"),
            "the township still shows a conflict on {hash} after the resolution synced"
        );
    }

    // The city: its dashboard over the whole city, with the freshness of each township.
    page.login(urls.city, CITY_LOGIN).await?;
    page.goto(&format!("{}/#/dash", urls.city)).await?;
    let freshness = page.wait_text("#freshness", "370202001").await?;
    ensure!(
        freshness.contains("及时") || freshness.contains("数据可能过期"),
        "the city's freshness table has no verdict per township: {freshness}"
    );
    ensure!(
        page.kpi("kpi-deputies").await? >= 1,
        "the city dashboard does not count the township's deputy"
    );
    page.wait_css("#chart-suggestions svg").await?;
    page.shot_full("06-city-dashboard.png").await?;
    Ok(())
}
