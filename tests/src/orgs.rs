//! The org units the scenarios run (units of the demo tree the city imports).

use renda_replica::OrgCode;

/// 青岛市.
pub const CITY: u64 = 370_200;
/// 市南区.
pub const COUNTY: u64 = 370_202;
/// Two townships (streets) of [`COUNTY`].
pub const TOWNSHIP_A: u64 = 370_202_001;
pub const TOWNSHIP_B: u64 = 370_202_002;

pub fn org(code: u64) -> OrgCode {
    OrgCode::new(code).expect("the scenarios' org codes are valid")
}
