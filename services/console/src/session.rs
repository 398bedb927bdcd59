//! The logged-in user: a signed login token (the same as the gateway's) kept in an HttpOnly,
//! SameSite=Strict cookie, and what that user may see on this node.

use axum::http::HeaderMap;
use renda_accounts::{Claims, TokenSigner};
use renda_domain::org::OrgCode as DOrg;
use renda_replica::OrgCode;

pub const COOKIE: &str = "renda_session";

/// A checked login.
#[derive(Clone, Debug)]
pub struct Session {
    pub claims: Claims,
    /// The signed token itself, forwarded on every call the console makes for the person.
    pub token: String,
    /// The node's own org unit.
    pub node: OrgCode,
}

impl Session {
    /// The session of a request, if its cookie holds a valid token.
    pub fn from_headers(headers: &HeaderMap, signer: &TokenSigner, node: OrgCode) -> Option<Self> {
        let token = cookie(headers, COOKIE)?;
        let claims = signer.verify(&token, crate::now_ms()).ok()?;
        Some(Session {
            claims,
            token,
            node,
        })
    }

    fn user_org(&self) -> Option<OrgCode> {
        self.claims.org.to_string().parse().ok()
    }

    /// Whether everything this node holds is in the user's view: the user's org is the node's
    /// own or above it. A node holds only its subtree and what was addressed down to it, so
    /// such a user needs no filtering.
    pub fn sees_whole_node(&self) -> bool {
        self.user_org().is_some_and(|u| u.contains(self.node))
    }

    /// Whether the user may see data of org unit `org` on this node.
    pub fn may_see(&self, org: &str) -> bool {
        if self.sees_whole_node() {
            return true;
        }
        match (self.user_org(), org.parse::<OrgCode>()) {
            (Some(user), Ok(org)) => user.contains(org),
            _ => false,
        }
    }

    pub fn org(&self) -> &DOrg {
        &self.claims.org
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value that stores `token` for `max_age_s` seconds (0 clears it).
pub fn set_cookie(token: &str, max_age_s: i64) -> String {
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_static("a=1; renda_session=v1.2.3; b=4"),
        );
        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("v1.2.3"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie("t", 60);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    }
}
