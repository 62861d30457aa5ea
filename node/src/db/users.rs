//! The people who use the node's web pages: accounts (`users`) and which received documents
//! someone has opened (`inbox_opened`).
//!
//! Invariants:
//! - An account name is unique (the table's key); it is never reused for someone else: a
//!   person who leaves is disabled, not deleted, so the history naming them stays true.
//! - Only the password's argon2 hash (PHC string) is stored, never the password.
//! - The first opening of a received document is recorded once; later openings change nothing.

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use exchange::Timestamp;
use exchange::packet_id::PacketId;
use store::DbResult;
use store::codec::{decode, encode};

use super::{NodeDb, NodeDbError};

pub(super) const USERS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("users");
pub(super) const INBOX_OPENED: redb::TableDefinition<&[u8; 32], &[u8]> =
    redb::TableDefinition::new("inbox_opened");

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Văn thư: sends, receives, answers with statuses.
    Clerk,
    /// Lưu trữ: reads and exports, changes nothing.
    Records,
    /// Quản trị: manages accounts, and may do what a clerk does.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Records => "records",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim() {
            "clerk" => Some(Role::Clerk),
            "records" => Some(Role::Records),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Vietnamese name of the role.
    pub fn label_vi(self) -> &'static str {
        match self {
            Role::Clerk => "Văn thư",
            Role::Records => "Lưu trữ",
            Role::Admin => "Quản trị",
        }
    }

    /// Whether the role sends documents and statuses.
    pub fn may_send(self) -> bool {
        matches!(self, Role::Clerk | Role::Admin)
    }
}

/// One account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name (`lan.nt`): lowercase letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// Full name, written in `StaffInfo/Staff` of what they send.
    pub full_name: String,
    /// Position (chức vụ), written in `StaffInfo/Department`.
    #[serde(default)]
    pub position: Option<String>,
    /// Their work address, written in `StaffInfo/Email`.
    #[serde(default)]
    pub email: Option<String>,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: Timestamp,
}

/// Who first opened a received document, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opened {
    pub by: String,
    pub at: Timestamp,
}

/// A change to an existing account.
#[derive(Debug, Clone)]
pub enum UserChange {
    Disable,
    Enable,
    Password(String),
}

impl NodeDb {
    /// Adds an account; refused if the name is taken.
    pub async fn add_user(&self, user: User) -> Result<(), NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(USERS).db()?;
                if t.get(user.name.as_str()).db()?.is_some() {
                    return Err(NodeDbError::UserExists(user.name.clone()));
                }
                t.insert(user.name.as_str(), encode(&user)?.as_slice())
                    .db()?;
                Ok(())
            })
            .await
    }

    /// Changes an account (the new password already hashed); the account afterwards.
    pub async fn change_user(&self, name: String, change: UserChange) -> Result<User, NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(USERS).db()?;
                let mut user: User = match t.get(name.as_str()).db()? {
                    Some(v) => decode(v.value())?,
                    None => return Err(NodeDbError::NoUser(name.clone())),
                };
                match &change {
                    UserChange::Disable => user.disabled = true,
                    UserChange::Enable => user.disabled = false,
                    UserChange::Password(hash) => user.password_hash = hash.clone(),
                }
                t.insert(name.as_str(), encode(&user)?.as_slice()).db()?;
                Ok(user)
            })
            .await
    }

    /// One account.
    pub async fn user(&self, name: String) -> Result<Option<User>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(USERS).db()?;
                Ok(match t.get(name.as_str()).db()? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                })
            })
            .await
    }

    /// Every account, by name.
    pub async fn users(&self) -> Result<Vec<User>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(USERS).db()?;
                let mut out = Vec::new();
                for row in t.iter().db()? {
                    let (_, v) = row.db()?;
                    out.push(decode(v.value())?);
                }
                Ok(out)
            })
            .await
    }

    /// Records that `by` opened the received packet `id` (the first opening only).
    pub async fn mark_opened(&self, id: PacketId, by: String) -> Result<(), NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(INBOX_OPENED).db()?;
                if t.get(id.as_bytes()).db()?.is_none() {
                    let o = Opened {
                        by: by.clone(),
                        at: Timestamp::now(),
                    };
                    t.insert(id.as_bytes(), encode(&o)?.as_slice()).db()?;
                }
                Ok(())
            })
            .await
    }

    /// Who first opened each of `ids` (absent: nobody yet).
    pub async fn opened(&self, ids: Vec<PacketId>) -> Result<Vec<Option<Opened>>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(INBOX_OPENED).db()?;
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    out.push(match t.get(id.as_bytes()).db()? {
                        Some(v) => Some(decode(v.value())?),
                        None => None,
                    });
                }
                Ok(out)
            })
            .await
    }
}
