//! Demo data for the README's demo mesh: 青岛市 with 市南区 and 崂山区 and two streets each
//! ([`OrgTree::demo`]), filled with a small but realistic quarter (2026 Q3) of deputy work,
//! shaped by the figures in `domain.md`.
//!
//! Every record is written through `renda-api`'s service implementations, called in process
//! ([`renda_api::local::Local`]) with a clerk's identity at the node that owns the step, so the demo passes the same
//! validation, authority checks and status folds as a console would, and writes nothing a
//! node could not write itself. Steps of one level on records of another need the records to
//! have arrived by sync first, so seeding runs in phases with a sync between them:
//!
//! 1. [`seed_org_tree`] at the city: the org units, as reference data.
//! 2. [`seed_local`] at each street and county: deputies of three levels with valid ID-card
//!    numbers, a deputy group, two stations with receptions, a street activity, opinions on
//!    the four routes, suggestions and a motion in review, a congress session with its
//!    差额票决 vote and the adopted projects' progress, report-backs and evaluations; at each
//!    county its handling units.
//! 3. [`seed_county_work`] at each county and the city: activities dispatched to deputies of
//!    the streets, assignments and replies (A/B/C), escalated opinions resolved, a department
//!    appraisal.
//! 4. [`seed_follow_up`] at each street: deputies accept and check in, rate the replies.
//! 5. [`seed_county_close`] at each county: second round for the unsatisfied reply, closing
//!    of the satisfied one, the B reply marked implemented.
//!
//! [`seed_demo`] runs all five with [`Mesh::sync`] in between; [`summary`] counts records per
//! kind per node for printing.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use renda_domain::org::OrgTree;
use renda_proto::activity::v1 as apb;
use renda_proto::deputy::v1 as dpb;
use renda_proto::evaluation::v1 as epb;
use renda_proto::opinion::v1 as opb;
use renda_proto::project::v1 as ppb;
use renda_proto::station::v1 as spb;
use renda_proto::suggestion::v1 as sgpb;
use renda_proto::types::v1::Satisfaction;
use renda_store::Store;
use tonic::{Request, Response, Status};

use apb::activities_server::Activities as _;
use apb::{ActivityKind, Participation};
use dpb::DeputyLevel;
use dpb::deputies_server::Deputies as _;
use epb::evaluations_server::Evaluations as _;
use opb::opinions_server::Opinions as _;
use ppb::projects_server::Projects as _;
use sgpb::suggestions_server::Suggestions as _;
use spb::stations_server::Stations as _;

use renda_api::local::Local;
use renda_api::{ApiContext, Caller};

/// One node of the demo mesh: its store and the context its services run with.
#[derive(Clone)]
pub struct DemoNode {
    pub store: Store,
    pub ctx: ApiContext,
}

/// The demo mesh's nodes by org code (`"370200"`, `"370202"`, `"370202001"`, …).
pub type DemoStores = BTreeMap<String, DemoNode>;

/// Moves operations between the demo's nodes, as the mesh's sync does.
pub trait Mesh {
    /// Returns once every node holds what its scope gives it from the others (one round up
    /// the tree and one down is enough).
    fn sync(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Why seeding stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo mesh has no node for {0}")]
    MissingNode(String),
    #[error("demo step {step} at {org} was refused: {status}")]
    Refused {
        step: &'static str,
        org: String,
        status: Box<Status>,
    },
    #[error("demo step {step} at {org}: {reason}")]
    Unexpected {
        step: &'static str,
        org: String,
        reason: String,
    },
    #[error("sync between phases failed: {0}")]
    Sync(String),
    #[error(transparent)]
    Store(#[from] renda_store::Error),
}

type Result<T, E = DemoError> = std::result::Result<T, E>;

/// The quarter the demo covers.
const YEAR: i32 = 2026;
const CITY: &str = "370200";

/// One street of the demo and what makes it local.
struct Street {
    code: &'static str,
    name: &'static str,
    county: &'static str,
    communities: [&'static str; 4],
    sectors: [&'static str; 4],
    projects: [(&'static str, i64); 6],
    opinions: [&'static str; 8],
}

const STREETS: [Street; 4] = [
    Street {
        code: "370202001",
        name: "八大峡街道",
        county: "370202",
        communities: ["团岛社区", "西陵峡路社区", "贵州路社区", "南海路社区"],
        sectors: ["社区工作者", "个体工商户", "教师", "退休职工"],
        projects: [
            ("团岛片区老旧小区加装电梯", 120_000_000),
            ("西陵峡路口袋公园改造", 68_000_000),
            ("社区长者食堂扩建", 45_000_000),
            ("背街小巷路灯更新", 32_000_000),
            ("社区智慧停车改造", 90_000_000),
            ("海滨步道休憩座椅增设", 18_000_000),
        ],
        opinions: [
            "团岛三路楼道灯损坏，夜间出行不便",
            "南海路菜市场周边占道经营，影响通行",
            "贵州路社区老年活动室开放时间太短",
            "西陵峡路小区雨污管道堵塞，雨天返水",
            "希望增设社区儿童托管服务",
            "海滨步道部分护栏松动存在安全隐患",
            "公交线路调整后老人就医换乘不便",
            "老旧小区加装电梯补贴标准不清楚",
        ],
    },
    Street {
        code: "370202002",
        name: "云南路街道",
        county: "370202",
        communities: ["单县路社区", "云南路社区", "汶上路社区", "菏泽路社区"],
        sectors: ["医务人员", "社区工作者", "企业负责人", "律师"],
        projects: [
            ("云南路历史街区立面整治", 150_000_000),
            ("单县路社区卫生服务站改造", 80_000_000),
            ("汶上路便民市场提升", 55_000_000),
            ("社区养老驿站建设", 60_000_000),
            ("菏泽路小区停车位扩容", 75_000_000),
            ("街区公共厕所改造", 25_000_000),
        ],
        opinions: [
            "单县路小区供暖温度偏低",
            "云南路一带夜间施工噪音扰民",
            "菏泽路人行道破损需要修补",
            "汶上路便民市场缺少无障碍通道",
            "社区卫生服务站周末不开诊",
            "老城区消防通道被占用",
            "希望增加社区法律咨询服务次数",
            "中小学放学时段交通拥堵",
        ],
    },
    Street {
        code: "370212001",
        name: "沙子口街道",
        county: "370212",
        communities: ["沙子口社区", "南窑社区", "东麦窑社区", "段家埠社区"],
        sectors: ["渔民", "民宿经营者", "农民", "教师"],
        projects: [
            ("沙子口渔港码头安全护栏改造", 95_000_000),
            ("东麦窑村道路硬化", 70_000_000),
            ("南窑社区饮水管网改造", 110_000_000),
            ("段家埠文化广场建设", 48_000_000),
            ("渔民避风港清淤", 130_000_000),
            ("社区垃圾分类亭建设", 22_000_000),
        ],
        opinions: [
            "渔港码头照明不足，夜间作业危险",
            "东麦窑旅游旺季停车难",
            "南窑社区自来水水压不稳",
            "段家埠村口路面塌陷",
            "希望开展民宿消防安全培训",
            "渔民养老保险缴费政策咨询",
            "山区道路缺少减速带",
            "海鲜市场排污影响近海水质",
        ],
    },
    Street {
        code: "370212002",
        name: "王哥庄街道",
        county: "370212",
        communities: ["王哥庄社区", "晓望社区", "返岭社区", "港东社区"],
        sectors: ["茶农", "渔民", "乡村医生", "合作社负责人"],
        projects: [
            ("晓望茶园生产路修缮", 85_000_000),
            ("王哥庄大馒头产业园配套道路", 120_000_000),
            ("返岭社区卫生室标准化改造", 40_000_000),
            ("港东海岸线防浪堤加固", 160_000_000),
            ("社区综合文化站提升", 35_000_000),
            ("山区村庄应急避难场所建设", 50_000_000),
        ],
        opinions: [
            "茶园生产路雨后泥泞无法通行",
            "返岭社区卫生室药品种类少",
            "港东码头缺少救生设施",
            "晓望村山洪沟需清理",
            "茶叶销售旺季农产品检测排队长",
            "希望开通至区医院的直达公交",
            "村里快递点收费不规范",
            "山区手机信号差",
        ],
    },
];

const MALE_NAMES: [&str; 16] = [
    "王建国",
    "李志强",
    "张海峰",
    "刘德胜",
    "陈振华",
    "杨立新",
    "赵明辉",
    "周永刚",
    "吴国庆",
    "孙文博",
    "马海涛",
    "胡长青",
    "朱春雷",
    "郭宝山",
    "林学军",
    "高洪波",
];
const FEMALE_NAMES: [&str; 16] = [
    "王秀英",
    "李春梅",
    "张丽娟",
    "刘玉兰",
    "陈红霞",
    "杨美玲",
    "赵淑芬",
    "周雪梅",
    "吴桂英",
    "孙晓燕",
    "马慧敏",
    "胡素珍",
    "朱晓红",
    "郭凤霞",
    "林海燕",
    "高玉珍",
];

/// The levels of the deputies of one street, by position: 11 deputies, of whom one holds a
/// city and a county seat, one a county and a street seat; seven sit in the street's own
/// congress (议政会 at a street), so its 差额票决 has seven voters.
const LEVELS: [&[DeputyLevel]; 11] = [
    &[DeputyLevel::City, DeputyLevel::County],
    &[DeputyLevel::City],
    &[DeputyLevel::County],
    &[DeputyLevel::County],
    &[DeputyLevel::County, DeputyLevel::Township],
    &[DeputyLevel::Township],
    &[DeputyLevel::Township],
    &[DeputyLevel::Township],
    &[DeputyLevel::Township],
    &[DeputyLevel::Township],
    &[DeputyLevel::Township],
];

/// Whether a deputy as the API answers holds a seat of `level`.
fn holds(d: &dpb::Deputy, level: DeputyLevel) -> bool {
    d.levels.contains(&i32::from(level))
}

/// Suggestions of each street and the state each reaches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// 已提交, awaiting review.
    Submitted,
    /// 退回修改.
    RevisionRequested,
    /// 已交办, no reply yet.
    Assigned,
    /// A → 满意 → 办结.
    Closed,
    /// B → 基本满意.
    RatedBasically,
    /// C → 不满意 → 二次交办.
    SecondRound,
    /// 主办 with 协办, replied A, not yet rated.
    Replied,
    /// 撤回.
    Withdrawn,
    /// 并案 into the B item.
    Merged,
}

const SUGGESTIONS: [(&str, Plan); 9] = [
    ("关于增设社区公共充电设施的建议", Plan::Submitted),
    ("关于规范共享单车停放的建议", Plan::RevisionRequested),
    ("关于加强老旧小区物业管理的建议", Plan::Assigned),
    ("关于修复辖区破损道路的建议", Plan::Closed),
    ("关于完善社区养老服务的建议", Plan::RatedBasically),
    ("关于解决学校周边交通拥堵的建议", Plan::SecondRound),
    ("关于提升社区卫生服务能力的建议", Plan::Replied),
    ("关于调整垃圾清运时间的建议", Plan::Withdrawn),
    ("关于推进居家养老上门服务的建议", Plan::Merged),
];

const HANDLING_UNITS: [&str; 6] = [
    "区住房和城乡建设局",
    "区交通运输局",
    "区教育和体育局",
    "区卫生健康局",
    "区城市管理局",
    "区民政局",
];

/// A node's services, called in process as one of its clerks.
struct At {
    local: Local,
    org: String,
}

impl At {
    fn new(nodes: &DemoStores, org: &str) -> Result<Self> {
        let node = nodes
            .get(org)
            .ok_or_else(|| DemoError::MissingNode(org.to_owned()))?;
        Ok(Self {
            local: Local::new(node.store.clone(), node.ctx.clone()),
            org: org.to_owned(),
        })
    }

    /// A request as this node's own hand: the demo seeds in process, holding the store, as
    /// `bootstrap_user` does, so no token is involved.
    fn req<T>(&self, msg: T) -> Request<T> {
        match renda_domain::org::OrgCode::parse(&self.org) {
            Ok(org) => {
                let mut caller = Caller::system(&org);
                caller.user = 1;
                if org.level() == renda_domain::org::Level::Township {
                    caller.role = renda_accounts::UserRole::TownshipClerk;
                }
                Local::request(msg, caller)
            }
            // No caller: the service refuses the call as unauthenticated, naming the step.
            Err(_) => Request::new(msg),
        }
    }

    fn done<T>(&self, step: &'static str, r: Result<Response<T>, Status>) -> Result<T> {
        r.map(Response::into_inner)
            .map_err(|status| DemoError::Refused {
                step,
                org: self.org.clone(),
                status: Box::new(status),
            })
    }

    fn unexpected(&self, step: &'static str, reason: impl Into<String>) -> DemoError {
        DemoError::Unexpected {
            step,
            org: self.org.clone(),
            reason: reason.into(),
        }
    }

    async fn deputies_of(&self, org: &str) -> Result<Vec<dpb::Deputy>> {
        let r = self
            .local
            .deputies()
            .list_deputies(self.req(dpb::ListDeputiesRequest {
                org: org.into(),
                limit: 1000,
                offset: 0,
            }))
            .await;
        Ok(self.done("list deputies", r)?.deputies)
    }

    async fn suggestions_of(&self, org: &str) -> Result<Vec<sgpb::Suggestion>> {
        let r = self
            .local
            .suggestions()
            .list_suggestions(self.req(sgpb::ListSuggestionsRequest {
                org: org.into(),
                limit: 1000,
                offset: 0,
            }))
            .await;
        Ok(self.done("list suggestions", r)?.suggestions)
    }
}

/// A day of the demo year as a request's `renda.types.v1.Date`.
fn date(month: u32, d: u32) -> Option<renda_proto::types::v1::Date> {
    NaiveDate::from_ymd_opt(YEAR, month, d).map(Into::into)
}

fn at_ms(month: u32, d: u32, hour: u32) -> i64 {
    let date = NaiveDate::from_ymd_opt(YEAR, month, d).unwrap_or_default();
    let time = NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or_default();
    // Business times are Beijing time (UTC+8).
    Utc.from_utc_datetime(&date.and_time(time))
        .timestamp_millis()
        - 8 * 3_600_000
}

/// A valid 18-digit ID-card number (GB 11643 checksum) for the demo.
pub fn id_card(area: &str, born: NaiveDate, sequence: u32, male: bool) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    // The last digit of the sequence is odd for men and even for women.
    let seq = (sequence % 50) * 2 + u32::from(male);
    let body = format!("{area}{}{:03}", born.format("%Y%m%d"), seq);
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = char::from(CHECK[(sum % 11) as usize]);
    format!("{body}{check}")
}

/// Phase 1, at the city: the demo org tree as `org_unit` records, imported as
/// `node-agent org import` does.
pub async fn seed_org_tree(nodes: &DemoStores) -> Result<usize> {
    let city = At::new(nodes, CITY)?;
    let units = OrgTree::demo().named_units();
    renda_api::org::bootstrap_units(city.local.store(), city.local.ctx(), &units)
        .await
        .map_err(|e| DemoError::Refused {
            step: "create org unit",
            org: CITY.into(),
            status: Box::new(e.into()),
        })?;
    Ok(units.len())
}

/// Phase 2, at each street and county: everything a node does on its own.
pub async fn seed_local(nodes: &DemoStores) -> Result<()> {
    for county in ["370202", "370212"] {
        let at = At::new(nodes, county)?;
        for name in HANDLING_UNITS {
            let r = at
                .local
                .suggestions()
                .create_handling_unit(at.req(sgpb::CreateHandlingUnitRequest {
                    org: county.into(),
                    name: name.into(),
                }))
                .await;
            at.done("create handling unit", r)?;
        }
    }
    for (i, street) in STREETS.iter().enumerate() {
        seed_street(&At::new(nodes, street.code)?, street, i as u32).await?;
    }
    Ok(())
}

async fn seed_street(at: &At, street: &Street, index: u32) -> Result<()> {
    // Deputies of three levels.
    let mut deputies: Vec<dpb::Deputy> = Vec::new();
    for (i, levels) in LEVELS.iter().enumerate() {
        let i = i as u32;
        let n = index * 11 + i;
        let male = n % 5 != 1 && n % 5 != 3;
        let name = if male {
            MALE_NAMES[(n as usize * 7) % MALE_NAMES.len()]
        } else {
            FEMALE_NAMES[(n as usize * 5) % FEMALE_NAMES.len()]
        };
        let born = NaiveDate::from_ymd_opt(1962 + (n * 7 % 32) as i32, 1 + n % 12, 1 + n * 3 % 28)
            .unwrap_or_default();
        let term = if levels.contains(&DeputyLevel::Township) {
            19
        } else {
            18
        };
        let r = at
            .local
            .deputies()
            .create_deputy(at.req(dpb::CreateDeputyRequest {
                org: street.code.into(),
                fields: Some(dpb::DeputyFields {
                    name: name.into(),
                    levels: levels.iter().map(|l| i32::from(*l)).collect(),
                    constituency: format!(
                        "{}第{}选区",
                        street.communities[(i % 4) as usize],
                        i / 4 + 1
                    ),
                    term,
                    gender: 0,
                    ethnicity: if n % 9 == 4 { "回族" } else { "汉族" }.into(),
                    sector: street.sectors[(i % 4) as usize].into(),
                    phone: format!("139{:08}", 53_200_000 + n * 7_919),
                    id_card: id_card(street.county, born, n, male),
                    status: dpb::DeputyStatus::Serving.into(),
                }),
            }))
            .await;
        let d = at.done("create deputy", r)?;
        let r = at
            .local
            .deputies()
            .record_pledge(at.req(dpb::RecordPledgeRequest {
                deputy_id: d.id.clone(),
                text: format!(
                    "每月到{}接待选民不少于一次，每年走访联系户全覆盖",
                    street.communities[(i % 4) as usize]
                ),
                on: date(1, 15),
            }))
            .await;
        at.done("record pledge", r)?;
        deputies.push(d);
    }
    let ids: Vec<String> = deputies.iter().map(|d| d.id.clone()).collect();
    let seated: Vec<String> = deputies
        .iter()
        .filter(|d| holds(d, DeputyLevel::Township))
        .map(|d| d.id.clone())
        .collect();

    // 联系选民: rural and community deputies each paired with about 50 households.
    for (i, d) in deputies.iter().enumerate().skip(4) {
        for month in [7, 8, 9] {
            if (i + month as usize).is_multiple_of(3) {
                continue;
            }
            let r = at
                .local
                .deputies()
                .record_visit(at.req(dpb::RecordVisitRequest {
                    deputy_id: d.id.clone(),
                    households: 8 + (i as u32 * 3 + month) % 10,
                    note: "走访联系户，收集意见建议".into(),
                    on: date(month, 5 + i as u32),
                }))
                .await;
            at.done("record visit", r)?;
        }
    }

    // A deputy group of every deputy of the street.
    let r = at
        .local
        .deputies()
        .create_group(at.req(dpb::CreateGroupRequest {
            org: street.code.into(),
            name: format!("{}代表小组", street.name),
            sector: String::new(),
            members: ids.clone(),
        }))
        .await;
    let group = at.done("create group", r)?;

    // Two stations: a 代表之家 nearly complete and a 联络站 half way through 八有四公开.
    use spb::ChecklistItem as Item;
    const ALL: [Item; 12] = [
        Item::Premises,
        Item::Information,
        Item::Rules,
        Item::Plan,
        Item::Files,
        Item::Materials,
        Item::Equipment,
        Item::OnlinePlatform,
        Item::DeputyInfoPublished,
        Item::ReceptionPlanPublished,
        Item::WorkStatusPublished,
        Item::OperationStatusPublished,
    ];
    let plans: [(spb::StationKind, &str, usize); 2] = [
        (spb::StationKind::Home, "代表之家", 10),
        (spb::StationKind::Station, "代表联络站", 7),
    ];
    let mut stations = Vec::new();
    for (k, (kind, label, met)) in plans.iter().enumerate() {
        let r = at
            .local
            .stations()
            .create_station(at.req(spb::CreateStationRequest {
                name: format!("{}{label}", street.communities[k]),
                kind: (*kind).into(),
                address: format!(
                    "青岛市{}{}{}号",
                    county_name(street),
                    street.communities[k],
                    10 + index * 3 + k as u32
                ),
                checklist: ALL.iter().take(*met).map(|i| (*i).into()).collect(),
            }))
            .await;
        let s = at.done("create station", r)?;
        let residents: Vec<String> = ids.iter().skip(k * 4).take(4).cloned().collect();
        let r = at
            .local
            .stations()
            .set_residents(at.req(spb::SetResidentsRequest {
                station_id: s.id.clone(),
                add: residents.clone(),
                remove: vec![],
            }))
            .await;
        at.done("set residents", r)?;
        // 邀您见: the 10th of each month.
        for month in [7, 8, 9] {
            let r = at
                .local
                .stations()
                .record_reception(
                    at.req(spb::RecordReceptionRequest {
                        station_id: s.id.clone(),
                        deputy_ids: residents
                            .iter()
                            .take(2 + (month as usize % 2))
                            .cloned()
                            .collect(),
                        on: Some(renda_proto::types::v1::Date {
                            year: YEAR,
                            month,
                            day: 10,
                        }),
                        note: "代表接待日，现场接待选民".into(),
                    }),
                )
                .await;
            at.done("record reception", r)?;
        }
        stations.push(s);
    }

    // A group activity of the street, accepted and checked in on the spot.
    let r = at
        .local
        .activities()
        .create_activity(at.req(apb::CreateActivityRequest {
            kind: ActivityKind::GroupActivity.into(),
            title: format!("{}代表小组第三季度集中活动", street.name),
            starts_at_ms: at_ms(8, 20, 9),
            venue: stations[0].name.clone(),
        }))
        .await;
    let activity = at.done("create activity", r)?;
    let invited: Vec<String> = ids.iter().skip(4).cloned().collect();
    let r = at
        .local
        .activities()
        .dispatch_activity(at.req(apb::DispatchActivityRequest {
            activity_id: activity.id.clone(),
            deputy_ids: invited.clone(),
        }))
        .await;
    at.done("dispatch activity", r)?;
    for (i, d) in invited.iter().enumerate() {
        if i % 4 == 3 {
            continue;
        }
        let r = at
            .local
            .activities()
            .accept_activity(at.req(apb::AcceptActivityRequest {
                activity_id: activity.id.clone(),
                deputy_id: d.clone(),
            }))
            .await;
        at.done("accept activity", r)?;
        if i % 4 == 2 {
            continue;
        }
        let r = at
            .local
            .activities()
            .check_in(at.req(apb::CheckInRequest {
                activity_id: activity.id.clone(),
                deputy_id: d.clone(),
                // The clerk enters the check-in for the deputy (代录).
                qr_token: String::new(),
                at_ms: at_ms(8, 20, 9),
            }))
            .await;
        at.done("check in", r)?;
        if i % 3 == 0 {
            let r = at
                .local
                .activities()
                .record_speech(at.req(apb::RecordSpeechRequest {
                    activity_id: activity.id.clone(),
                    deputy_id: d.clone(),
                    topic: "社区治理与民生实事推进".into(),
                }))
                .await;
            at.done("record speech", r)?;
        }
    }

    // Opinions on the four routes: two each.
    use opb::OpinionRoute as Route;
    let routes = [
        (Route::AnsweredOnSite, ""),
        (Route::TransferredToTownship, "街道社区治理办"),
        (Route::AssignedToDepartment, "区城市管理局"),
        (Route::EscalatedUpward, ""),
    ];
    for (i, content) in street.opinions.iter().enumerate() {
        let (route, to) = routes[i / 2];
        let station = &stations[i % 2];
        let r = at
            .local
            .opinions()
            .raise_opinion(
                at.req(opb::RaiseOpinionRequest {
                    content: (*content).into(),
                    source: if i % 3 == 0 {
                        opb::OpinionSource::QrCode
                    } else {
                        opb::OpinionSource::Station
                    }
                    .into(),
                    station_id: station.id.clone(),
                    raised_at_ms: at_ms(7 + (i as u32 % 3), 10, 10),
                }),
            )
            .await;
        let o = at.done("raise opinion", r)?;
        if route != Route::EscalatedUpward {
            let r = at
                .local
                .opinions()
                .route_opinion(at.req(opb::RouteOpinionRequest {
                    opinion_id: o.id.clone(),
                    route: route.into(),
                    to: to.into(),
                }))
                .await;
            at.done("route opinion", r)?;
        }
        let resolve = match route {
            Route::AnsweredOnSite | Route::TransferredToTownship => true,
            Route::AssignedToDepartment => i % 2 == 0,
            _ => false,
        };
        if route == Route::EscalatedUpward {
            let r = at
                .local
                .opinions()
                .escalate_opinion(at.req(opb::OpinionStepRequest {
                    opinion_id: o.id.clone(),
                }))
                .await;
            at.done("escalate opinion", r)?;
        } else if resolve {
            let r = at
                .local
                .opinions()
                .resolve_opinion(at.req(opb::ResolveOpinionRequest {
                    opinion_id: o.id.clone(),
                    note: "已现场核实并处理完毕，向群众反馈办理结果".into(),
                }))
                .await;
            at.done("resolve opinion", r)?;
            if route == Route::AnsweredOnSite {
                let r = at
                    .local
                    .opinions()
                    .follow_up_opinion(at.req(opb::FollowUpOpinionRequest {
                        opinion_id: o.id.clone(),
                        citizen_satisfied: i % 2 == 0,
                    }))
                    .await;
                at.done("follow up opinion", r)?;
            }
        }
    }

    // Suggestions, each led by a different deputy with two co-signers, and one motion.
    let mut merged_target = String::new();
    for (i, (title, plan)) in SUGGESTIONS.iter().enumerate() {
        let lead = &ids[i % ids.len()];
        let co: Vec<String> = (1..=2).map(|k| ids[(i + k) % ids.len()].clone()).collect();
        let r = at
            .local
            .suggestions()
            .submit_suggestion(at.req(sgpb::SubmitSuggestionRequest {
                kind: sgpb::SuggestionKind::Suggestion.into(),
                title: (*title).into(),
                body: format!(
                    "{}：经走访{}等社区群众，反映较为集中，建议有关部门统筹研究、限期解决。",
                    title,
                    street.communities[i % 4]
                ),
                lead_deputy_id: lead.clone(),
                co_signer_ids: co,
                on: date(7, 1 + i as u32),
            }))
            .await;
        let s = at.done("submit suggestion", r)?;
        let review = |passed: bool| sgpb::ReviewSuggestionRequest {
            suggestion_id: s.id.clone(),
            passed,
            revision_reason: if passed {
                String::new()
            } else {
                "诉求不够具体，请补充问题发生的具体地点和涉及范围".into()
            },
            on: date(7, 12),
        };
        match plan {
            Plan::Submitted => {}
            Plan::RevisionRequested => {
                let r = at
                    .local
                    .suggestions()
                    .review_suggestion(at.req(review(false)))
                    .await;
                at.done("request revision", r)?;
            }
            Plan::Withdrawn => {
                let r = at
                    .local
                    .suggestions()
                    .withdraw_suggestion(at.req(sgpb::StepRequest {
                        suggestion_id: s.id.clone(),
                        on: date(7, 10),
                    }))
                    .await;
                at.done("withdraw suggestion", r)?;
            }
            Plan::Merged => {
                let r = at
                    .local
                    .suggestions()
                    .merge_suggestion(at.req(sgpb::MergeSuggestionRequest {
                        suggestion_id: s.id.clone(),
                        into_id: merged_target.clone(),
                        on: date(7, 12),
                    }))
                    .await;
                at.done("merge suggestion", r)?;
            }
            _ => {
                if *plan == Plan::RatedBasically {
                    merged_target = s.id.clone();
                }
                let r = at
                    .local
                    .suggestions()
                    .review_suggestion(at.req(review(true)))
                    .await;
                at.done("pass review", r)?;
            }
        }
    }
    let r = at
        .local
        .suggestions()
        .submit_suggestion(at.req(sgpb::SubmitSuggestionRequest {
            kind: sgpb::SuggestionKind::Motion.into(),
            title: format!("关于制定{}民生实事项目管护办法的议案", street.name),
            body: "已票决民生实事项目建成后缺少长效管护，建议制定管护办法，明确管护主体、经费和代表监督方式。".into(),
            lead_deputy_id: seated[0].clone(),
            co_signer_ids: seated[1..6].to_vec(),
            on: date(7, 3),
        }))
        .await;
    at.done("submit motion", r)?;

    // The street's congress votes its livelihood projects: six candidates for four places.
    let r = at
        .local
        .projects()
        .create_session(at.req(ppb::CreateSessionRequest {
            name: format!("{}{YEAR}年民生实事项目票决会议", street.name),
            year: YEAR,
            to_adopt: 4,
            threshold: ppb::Threshold::Seated.into(),
            candidate_margin: 2,
        }))
        .await;
    let session = at.done("create session", r)?;
    let r = at
        .local
        .projects()
        .set_seated(at.req(ppb::SetSeatedRequest {
            session_id: session.id.clone(),
            add: seated.clone(),
            remove: vec![],
        }))
        .await;
    at.done("set seated", r)?;
    for d in &seated {
        let r = at
            .local
            .projects()
            .sign_in(at.req(ppb::SignInRequest {
                session_id: session.id.clone(),
                deputy_id: d.clone(),
            }))
            .await;
        at.done("sign in", r)?;
    }
    let mut candidates = Vec::new();
    for (title, budget) in street.projects {
        let r = at
            .local
            .projects()
            .create_project(at.req(ppb::CreateProjectRequest {
                year: YEAR,
                title: title.into(),
                summary: format!("{title}，经征集、筛选和部门共商后列入候选项目。"),
                budget_fen: budget,
            }))
            .await;
        let p = at.done("create project", r)?;
        let r = at
            .local
            .projects()
            .screen_project(at.req(ppb::ScreenProjectRequest {
                project_id: p.id.clone(),
                session_id: session.id.clone(),
                on: date(1, 5),
            }))
            .await;
        candidates.push(at.done("shortlist project", r)?);
    }
    // A seventh proposal screened out before the vote.
    let r = at
        .local
        .projects()
        .create_project(at.req(ppb::CreateProjectRequest {
            year: YEAR,
            title: format!("{}景观灯光秀", street.name),
            summary: "群众受益面较小，未列入候选。".into(),
            budget_fen: 300_000_000,
        }))
        .await;
    let out = at.done("create project", r)?;
    let r = at
        .local
        .projects()
        .screen_project(at.req(ppb::ScreenProjectRequest {
            project_id: out.id.clone(),
            session_id: String::new(),
            on: date(1, 5),
        }))
        .await;
    at.done("screen out project", r)?;
    // Ballots: the first four candidates win clear majorities, the last two do not.
    for (c, p) in candidates.iter().enumerate() {
        for (v, d) in seated.iter().enumerate() {
            let votes_for = if c < 4 {
                6 - (c + index as usize) % 2
            } else {
                2 + c % 2
            };
            let choice = if v < votes_for {
                ppb::Choice::For
            } else if v % 2 == 0 {
                ppb::Choice::Against
            } else {
                ppb::Choice::Abstain
            };
            let r = at
                .local
                .projects()
                .cast_ballot(at.req(ppb::CastBallotRequest {
                    project_id: p.id.clone(),
                    deputy_id: d.clone(),
                    choice: choice.into(),
                }))
                .await;
            at.done("cast ballot", r)?;
        }
    }
    let r = at
        .local
        .projects()
        .tally_vote(at.req(ppb::TallyVoteRequest {
            session_id: session.id.clone(),
            record_outcome: true,
            on: date(1, 20),
        }))
        .await;
    let tally = at.done("tally vote", r)?;
    if tally.adopted.len() != 4 {
        return Err(at.unexpected(
            "tally vote",
            format!("{} adopted instead of 4", tally.adopted.len()),
        ));
    }
    // Implementation and supervision of the adopted four; the first is finished and accepted.
    for (k, id) in tally.adopted.iter().enumerate() {
        let r = at
            .local
            .projects()
            .set_plan(at.req(ppb::SetPlanRequest {
                project_id: id.clone(),
                budget_fen: street.projects[k].1,
                on: date(3, 1),
            }))
            .await;
        at.done("set plan", r)?;
        let target = if k == 0 { 100 } else { 30 + 20 * k as u32 };
        for (month, percent) in [(4, target / 3), (7, target * 2 / 3), (9, target)] {
            let r = at
                .local
                .projects()
                .report_progress(at.req(ppb::ReportProgressRequest {
                    project_id: id.clone(),
                    percent,
                    note: format!("第{}季度进度报告：完成{percent}%", (month - 1) / 3 + 1),
                    on: date(month, 28),
                }))
                .await;
            at.done("report progress", r)?;
        }
        if k < 2 {
            let r = at
                .local
                .projects()
                .adopt_for_supervision(at.req(ppb::AdoptForSupervisionRequest {
                    project_id: id.clone(),
                    group_id: group.id.clone(),
                    on: date(3, 10),
                }))
                .await;
            at.done("adopt for supervision", r)?;
        }
    }
    let first = &tally.adopted[0];
    for d in seated.iter().take(3) {
        let r = at
            .local
            .projects()
            .sign_acceptance(at.req(ppb::DeputyStepRequest {
                project_id: first.clone(),
                deputy_id: d.clone(),
                on: date(9, 29),
            }))
            .await;
        at.done("sign acceptance", r)?;
    }
    // The voter representatives of the project's area sign beside the deputies.
    for (name, community) in [
        ("刘大爷", street.communities[0]),
        ("陈阿姨", street.communities[1]),
    ] {
        let r = at
            .local
            .projects()
            .sign_acceptance_as_voter(at.req(ppb::SignAcceptanceAsVoterRequest {
                project_id: first.clone(),
                voter_name: name.into(),
                voter_area: community.into(),
                on: date(9, 29),
            }))
            .await;
        at.done("voter signs acceptance", r)?;
    }
    let r = at
        .local
        .projects()
        .pass_acceptance(at.req(ppb::ProjectStepRequest {
            project_id: first.clone(),
            on: date(9, 29),
        }))
        .await;
    at.done("pass acceptance", r)?;
    for (v, d) in seated.iter().enumerate() {
        let r = at
            .local
            .projects()
            .score_project(at.req(ppb::ScoreProjectRequest {
                project_id: first.clone(),
                deputy_id: d.clone(),
                score: 85 + (v as u32 * 3) % 15,
                on: date(9, 30),
            }))
            .await;
        at.done("score project", r)?;
    }
    let r = at
        .local
        .projects()
        .start_maintenance(at.req(ppb::DeputyStepRequest {
            project_id: first.clone(),
            deputy_id: seated[1].clone(),
            on: date(9, 30),
        }))
        .await;
    at.done("start maintenance", r)?;
    let r = at
        .local
        .projects()
        .record_maintenance(at.req(ppb::RecordMaintenanceRequest {
            project_id: first.clone(),
            deputy_id: seated[1].clone(),
            note: "巡查设施运行情况，清理周边杂物".into(),
            volunteer_points: 5,
            on: date(9, 30),
        }))
        .await;
    at.done("record maintenance", r)?;

    // Report-backs to voters (述职) and the yearly evaluation.
    for (i, d) in ids.iter().enumerate().skip(4).take(4) {
        let r = at
            .local
            .evaluations()
            .record_report_back(at.req(epb::RecordReportBackRequest {
                deputy_id: d.clone(),
                term: 19,
                on: date(7 + (i as u32 % 3), 18),
                summary: "向选区选民报告履职情况，现场听取意见建议".into(),
                voters_present: 35 + i as u32 * 4,
            }))
            .await;
        at.done("record report-back", r)?;
    }
    for (i, d) in ids.iter().enumerate().skip(5).take(3) {
        let r = at
            .local
            .evaluations()
            .record_evaluation(at.req(epb::RecordEvaluationRequest {
                deputy_id: d.clone(),
                year: YEAR - 1,
                self_score: 88 + i as u32 % 7,
                self_summary: "全年参加集中活动、进站接待和走访联系户，提出建议3件".into(),
                voter_scores: (0..12).map(|k| 80 + (k * 7 + i as u32) % 20).collect(),
            }))
            .await;
        at.done("record evaluation", r)?;
    }
    Ok(())
}

fn county_name(street: &Street) -> &'static str {
    if street.county == "370202" {
        "市南区"
    } else {
        "崂山区"
    }
}

/// Phase 3, at each county and the city: dispatching, assigning and replying.
pub async fn seed_county_work(nodes: &DemoStores) -> Result<()> {
    let activities: [(ActivityKind, &str, u32); 3] = [
        (ActivityKind::Research, "城市更新和老旧小区改造专题调研", 7),
        (ActivityKind::Inspection, "民生实事项目推进情况视察", 8),
        (
            ActivityKind::LawEnforcementInspection,
            "《中华人民共和国消防法》执法检查",
            9,
        ),
    ];
    for county in ["370202", "370212"] {
        let at = At::new(nodes, county)?;
        let deputies = at.deputies_of(county).await?;
        let county_deputies: Vec<String> = deputies
            .iter()
            .filter(|d| holds(d, DeputyLevel::County))
            .map(|d| d.id.clone())
            .collect();
        if county_deputies.is_empty() {
            return Err(at.unexpected("dispatch", "no county deputies here: sync first"));
        }
        for (k, (kind, title, month)) in activities.iter().enumerate() {
            let r = at
                .local
                .activities()
                .create_activity(at.req(apb::CreateActivityRequest {
                    kind: (*kind).into(),
                    title: (*title).into(),
                    starts_at_ms: at_ms(*month, 12 + k as u32, 9),
                    venue: format!(
                        "{}人大常委会会议室",
                        if county == "370202" {
                            "市南区"
                        } else {
                            "崂山区"
                        }
                    ),
                }))
                .await;
            let a = at.done("create activity", r)?;
            let invited: Vec<String> = county_deputies
                .iter()
                .enumerate()
                .filter(|(i, _)| (i + k) % 4 != 0)
                .map(|(_, d)| d.clone())
                .collect();
            let r = at
                .local
                .activities()
                .dispatch_activity(at.req(apb::DispatchActivityRequest {
                    activity_id: a.id.clone(),
                    deputy_ids: invited,
                }))
                .await;
            at.done("dispatch activity", r)?;
        }

        // Assignment of the streets' reviewed suggestions, then replies.
        let units = {
            let r = at
                .local
                .suggestions()
                .list_handling_units(at.req(sgpb::ListHandlingUnitsRequest { org: county.into() }))
                .await;
            at.done("list handling units", r)?.units
        };
        if units.len() < 3 {
            return Err(at.unexpected("assign", "the county's handling units are missing"));
        }
        for s in at.suggestions_of(county).await? {
            let Some((_, plan)) = SUGGESTIONS.iter().find(|(t, _)| *t == s.title) else {
                continue;
            };
            if s.status() != sgpb::SuggestionStatus::ReviewPassed {
                continue;
            }
            let n = s.title.chars().count();
            let lead = &units[n % units.len()];
            let assignment = if *plan == Plan::Replied {
                sgpb::Assignment {
                    mode: sgpb::AssignmentMode::LeadWithAssisting.into(),
                    unit_ids: vec![lead.id.clone()],
                    assisting_unit_ids: vec![units[(n + 1) % units.len()].id.clone()],
                }
            } else {
                sgpb::Assignment {
                    mode: sgpb::AssignmentMode::Single.into(),
                    unit_ids: vec![lead.id.clone()],
                    assisting_unit_ids: vec![],
                }
            };
            let r = at
                .local
                .suggestions()
                .assign_suggestion(at.req(sgpb::AssignSuggestionRequest {
                    suggestion_id: s.id.clone(),
                    assignment: Some(assignment.clone()),
                    on: date(7, 20),
                }))
                .await;
            at.done("assign suggestion", r)?;
            if *plan == Plan::Closed {
                let r = at
                    .local
                    .suggestions()
                    .set_supervision(at.req(sgpb::SetSupervisionRequest {
                        suggestion_id: s.id.clone(),
                        mode: sgpb::SupervisionMode::Key.into(),
                        on: date(7, 21),
                    }))
                    .await;
                at.done("set supervision", r)?;
            }
            if *plan == Plan::Replied {
                let r = at
                    .local
                    .suggestions()
                    .send_assisting_view(at.req(sgpb::UnitStepRequest {
                        suggestion_id: s.id.clone(),
                        unit_id: assignment.assisting_unit_ids[0].clone(),
                        on: date(8, 15),
                    }))
                    .await;
                at.done("send assisting view", r)?;
            }
            let category = match plan {
                Plan::Closed | Plan::Replied => sgpb::ReplyCategory::A,
                Plan::RatedBasically => sgpb::ReplyCategory::B,
                Plan::SecondRound => sgpb::ReplyCategory::C,
                _ => continue,
            };
            let r = at
                .local
                .suggestions()
                .reply_suggestion(at.req(sgpb::ReplySuggestionRequest {
                    suggestion_id: s.id.clone(),
                    unit_id: lead.id.clone(),
                    category: category.into(),
                    on: date(9, 5),
                }))
                .await;
            at.done("reply suggestion", r)?;
        }

        // Escalated opinions now held by the county: one resolved, one still handled.
        let r = at
            .local
            .opinions()
            .list_opinions(at.req(opb::ListOpinionsRequest {
                org: county.into(),
                limit: 1000,
                offset: 0,
            }))
            .await;
        let mut escalated = 0;
        for o in at.done("list opinions", r)?.opinions {
            if o.handling_org != county || o.status() == opb::OpinionStatus::Resolved {
                continue;
            }
            escalated += 1;
            if escalated % 2 == 0 {
                continue;
            }
            let r = at
                .local
                .opinions()
                .route_opinion(at.req(opb::RouteOpinionRequest {
                    opinion_id: o.id.clone(),
                    route: opb::OpinionRoute::AssignedToDepartment.into(),
                    to: HANDLING_UNITS[escalated % HANDLING_UNITS.len()].into(),
                }))
                .await;
            at.done("route escalated opinion", r)?;
            let r = at
                .local
                .opinions()
                .resolve_opinion(at.req(opb::ResolveOpinionRequest {
                    opinion_id: o.id.clone(),
                    note: "区级部门已办理，结果反馈街道并告知群众".into(),
                }))
                .await;
            at.done("resolve escalated opinion", r)?;
        }

        // 工作评议: the county deputies appraise one department.
        let r = at
            .local
            .evaluations()
            .create_appraisal(at.req(epb::CreateAppraisalRequest {
                department: HANDLING_UNITS[0].into(),
                year: YEAR,
            }))
            .await;
        let appraisal = at.done("create appraisal", r)?;
        let ratings = [
            Satisfaction::Satisfied,
            Satisfaction::Satisfied,
            Satisfaction::BasicallySatisfied,
            Satisfaction::Dissatisfied,
        ];
        for (i, d) in county_deputies.iter().enumerate() {
            let r = at
                .local
                .evaluations()
                .record_appraisal_vote(at.req(epb::RecordAppraisalVoteRequest {
                    appraisal_id: appraisal.id.clone(),
                    deputy_id: d.clone(),
                    satisfaction: ratings[i % ratings.len()].into(),
                }))
                .await;
            at.done("record appraisal vote", r)?;
        }
    }

    // The city trains its deputies.
    let at = At::new(nodes, CITY)?;
    let city_deputies: Vec<String> = at
        .deputies_of(CITY)
        .await?
        .into_iter()
        .filter(|d| holds(d, DeputyLevel::City))
        .map(|d| d.id)
        .collect();
    let r = at
        .local
        .activities()
        .create_activity(at.req(apb::CreateActivityRequest {
            kind: ActivityKind::Training.into(),
            title: "市人大代表履职能力专题培训".into(),
            starts_at_ms: at_ms(9, 16, 9),
            venue: "青岛市人大常委会培训中心".into(),
        }))
        .await;
    let a = at.done("create activity", r)?;
    let r = at
        .local
        .activities()
        .dispatch_activity(at.req(apb::DispatchActivityRequest {
            activity_id: a.id,
            deputy_ids: city_deputies,
        }))
        .await;
    at.done("dispatch activity", r)?;
    Ok(())
}

/// Phase 4, at each street: deputies take and close the orders from above, and rate replies.
pub async fn seed_follow_up(nodes: &DemoStores) -> Result<()> {
    for street in &STREETS {
        let at = At::new(nodes, street.code)?;
        let r = at
            .local
            .activities()
            .list_activities(at.req(apb::ListActivitiesRequest {
                org: street.code.into(),
                limit: 1000,
                offset: 0,
            }))
            .await;
        let mine: Vec<String> = at
            .deputies_of(street.code)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        for a in at.done("list activities", r)?.activities {
            if a.org == street.code {
                continue;
            }
            for (i, p) in a.participants.iter().enumerate() {
                if !mine.contains(&p.deputy_id)
                    || p.participation != i32::from(Participation::Invited)
                    || i % 5 == 4
                {
                    continue;
                }
                let r = at
                    .local
                    .activities()
                    .accept_activity(at.req(apb::AcceptActivityRequest {
                        activity_id: a.id.clone(),
                        deputy_id: p.deputy_id.clone(),
                    }))
                    .await;
                at.done("accept activity", r)?;
                if i % 5 == 3 {
                    continue;
                }
                let r = at
                    .local
                    .activities()
                    .check_in(at.req(apb::CheckInRequest {
                        activity_id: a.id.clone(),
                        deputy_id: p.deputy_id.clone(),
                        // Entered by the clerk for the deputy (代录).
                        qr_token: String::new(),
                        at_ms: a.starts_at_ms + 600_000,
                    }))
                    .await;
                at.done("check in", r)?;
            }
        }
        for s in at.suggestions_of(street.code).await? {
            let Some((_, plan)) = SUGGESTIONS.iter().find(|(t, _)| *t == s.title) else {
                continue;
            };
            let satisfaction = match plan {
                Plan::Closed => Satisfaction::Satisfied,
                Plan::RatedBasically => Satisfaction::BasicallySatisfied,
                Plan::SecondRound => Satisfaction::Dissatisfied,
                _ => continue,
            };
            if s.status() != sgpb::SuggestionStatus::Replied {
                return Err(at.unexpected(
                    "rate suggestion",
                    format!("{} is {:?}: sync first", s.title, s.status()),
                ));
            }
            let r = at
                .local
                .suggestions()
                .rate_suggestion(at.req(sgpb::RateSuggestionRequest {
                    suggestion_id: s.id.clone(),
                    deputy_id: s.lead_deputy_id.clone(),
                    satisfaction: satisfaction.into(),
                    on: date(9, 20),
                }))
                .await;
            at.done("rate suggestion", r)?;
        }
    }
    Ok(())
}

/// Phase 5, at each county: second round for the unsatisfied reply, closing the solved one.
pub async fn seed_county_close(nodes: &DemoStores) -> Result<()> {
    for county in ["370202", "370212"] {
        let at = At::new(nodes, county)?;
        for s in at.suggestions_of(county).await? {
            let Some((_, plan)) = SUGGESTIONS.iter().find(|(t, _)| *t == s.title) else {
                continue;
            };
            let step = sgpb::StepRequest {
                suggestion_id: s.id.clone(),
                on: date(9, 25),
            };
            match plan {
                Plan::SecondRound => {
                    let r = at.local.suggestions().second_round(at.req(step)).await;
                    at.done("second round", r)?;
                }
                Plan::Closed => {
                    let r = at.local.suggestions().close_suggestion(at.req(step)).await;
                    at.done("close suggestion", r)?;
                }
                Plan::RatedBasically => {
                    // B: being solved; followed up and marked implemented once done.
                    let r = at.local.suggestions().mark_implemented(at.req(step)).await;
                    at.done("mark implemented", r)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Seeds the whole demo: the five phases with a sync of the mesh before each later one.
pub async fn seed_demo(nodes: &DemoStores, mesh: &impl Mesh) -> Result<DemoSummary> {
    seed_org_tree(nodes).await?;
    mesh.sync().await.map_err(DemoError::Sync)?;
    seed_local(nodes).await?;
    mesh.sync().await.map_err(DemoError::Sync)?;
    seed_county_work(nodes).await?;
    mesh.sync().await.map_err(DemoError::Sync)?;
    seed_follow_up(nodes).await?;
    mesh.sync().await.map_err(DemoError::Sync)?;
    seed_county_close(nodes).await?;
    mesh.sync().await.map_err(DemoError::Sync)?;
    summary(nodes).await
}

/// Records per kind per node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoSummary {
    /// Org code → kind name → live records.
    pub nodes: BTreeMap<String, BTreeMap<String, u64>>,
}

impl DemoSummary {
    pub fn count(&self, org: &str, kind: &str) -> u64 {
        self.nodes
            .get(org)
            .and_then(|k| k.get(kind))
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (org, kinds) in &self.nodes {
            write!(f, "{org}:")?;
            for (kind, n) in kinds {
                write!(f, " {kind}={n}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Counts the live records of every kind at every node.
pub async fn summary(nodes: &DemoStores) -> Result<DemoSummary> {
    const PAGE: u32 = 1000;
    let mut out = DemoSummary::default();
    for (org, node) in nodes {
        let mut kinds = BTreeMap::new();
        for kind in node.store.schema().kinds() {
            let mut n = 0u64;
            let mut offset = 0u64;
            loop {
                let page = node
                    .store
                    .records_of_kind(kind.id, None, PAGE, offset)
                    .await?;
                n += page.iter().filter(|r| !r.deleted).count() as u64;
                if page.len() < PAGE as usize {
                    break;
                }
                offset += u64::from(PAGE);
            }
            if n > 0 {
                kinds.insert(kind.name.clone(), n);
            }
        }
        out.nodes.insert(org.clone(), kinds);
    }
    Ok(out)
}
