//! Who did what, in words a person reads: an operation's author (`org#number` on the wire and
//! in the op log) as the user's display name and the name of their org unit.

use std::collections::BTreeMap;
use std::sync::Arc;

use renda_domain::org::OrgTree;
use renda_replica::{Author, OrgCode, Value};
use renda_store::Store;

use crate::error::{Error, Result};
use crate::schema::kind;

/// The users and org units this node holds, to name authors by.
#[derive(Debug, Clone)]
pub struct Directory {
    users: BTreeMap<(OrgCode, u32), String>,
    tree: Arc<OrgTree>,
}

impl Directory {
    /// Reads every user record (display names only) and the org tree of `store`.
    pub async fn load(store: &Store, ctx: &crate::ApiContext) -> Result<Directory> {
        const PAGE: u32 = 1000;
        let user_kind = store
            .schema()
            .kind_named(kind::USER)
            .map(|k| k.id)
            .ok_or_else(|| Error::Internal("schema has no user kind".into()))?;
        let mut users = BTreeMap::new();
        let mut offset = 0u64;
        loop {
            let page = store.records_of_kind(user_kind, None, PAGE, offset).await?;
            for r in &page {
                let number = r.fields.get("number").and_then(Value::as_int);
                let name = r.fields.get("display_name").and_then(Value::as_text);
                if let (Some(org), Some(number), Some(name)) = (r.org, number, name)
                    && let Ok(number) = u32::try_from(number)
                {
                    users.insert((org, number), name.to_owned());
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
            offset += u64::from(PAGE);
        }
        Ok(Directory {
            users,
            tree: ctx.refresh(store).await?,
        })
    }

    /// The org unit's name, or its code while its record has not arrived.
    pub fn unit(&self, org: OrgCode) -> String {
        self.tree
            .get(&org)
            .map(|u| u.name.clone())
            .unwrap_or_else(|| org.to_string())
    }

    /// The author's display name: `系统` for the deployment's own hand (bootstrap imports), and
    /// `用户<number>` for a user whose record this node does not hold.
    pub fn person(&self, author: &Author) -> String {
        if author.number == 0 {
            return "系统".into();
        }
        self.users
            .get(&(author.org, author.number))
            .cloned()
            .unwrap_or_else(|| format!("用户{}", author.number))
    }
}
