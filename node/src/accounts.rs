//! Accounts of the node's web pages: checking a new account, hashing and checking passwords
//! (argon2id), and the `StaffInfo` a logged-in person signs with.
//!
//! Invariants:
//! - Passwords are hashed with argon2id and a random salt, on the blocking pool (hashing is
//!   deliberately slow); only the PHC string is stored.
//! - A login with an unknown or disabled account costs the same hash as a wrong password, so
//!   the answer's timing does not tell which names exist.
//! - The account API and the CLI go through [`add`] and [`change`]; both refuse what they
//!   cannot store cleanly and change nothing then.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use edxml::compose::StaffSpec;
use exchange::Timestamp;

use super::db::{NodeDb, NodeDbError, Role, User, UserChange};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
const MAX_PASSWORD: usize = 1024;
const MAX_TEXT: usize = 200;

/// Why an account request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] NodeDbError),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `clerk`, `records` or `admin`.
    pub role: String,
    pub password: String,
}

/// An account as the API shows it (no hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub role: String,
    pub disabled: bool,
    pub created_at: Timestamp,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            full_name: u.full_name.clone(),
            position: u.position.clone(),
            email: u.email.clone(),
            role: u.role.as_str().to_string(),
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// Body of `POST /api/v1/users/{name}`: one change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeUser {
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default)]
    pub password: Option<String>,
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(format!(
            "account name {name:?} is not usable: 1 to 64 lowercase letters, digits, '.', '_' \
             or '-' (e.g. lan.nt)"
        )))
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD {
        return Err(AccountError::Invalid(format!(
            "the password is too short: at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > MAX_PASSWORD {
        return Err(AccountError::Invalid(format!(
            "the password is too long: at most {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

fn text(what: &str, value: Option<&str>, required: bool) -> Result<Option<String>, AccountError> {
    let v = value.map(str::trim).filter(|v| !v.is_empty());
    match v {
        None if required => Err(AccountError::Invalid(format!("{what} is required"))),
        Some(v) if v.chars().count() > MAX_TEXT || v.chars().any(char::is_control) => {
            Err(AccountError::Invalid(format!(
                "{what} must be one line of at most {MAX_TEXT} characters"
            )))
        }
        v => Ok(v.map(str::to_string)),
    }
}

/// argon2id hash of `password` (PHC string), on the blocking pool.
pub async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| {
            AccountError::Hash("the operating system's random generator failed".into())
        })?;
        let salt = SaltString::encode_b64(&bytes).map_err(|e| AccountError::Hash(e.to_string()))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AccountError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))?
}

/// A stand-in hash so that unknown accounts cost as much as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2h7Q3Hq5y0m6b1f1Jg8o6c2i0xv5m3cYzYV8m2QW0XQ";

/// Whether `password` opens the account (`None`: unknown or disabled, always false).
pub async fn verify(user: Option<User>, password: String) -> Option<User> {
    tokio::task::spawn_blocking(move || {
        let stored = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = PasswordHash::new(&stored)
            .map(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        match user {
            Some(u) if ok && !u.disabled => Some(u),
            _ => None,
        }
    })
    .await
    .ok()
    .flatten()
}

/// Checks and stores a new account.
pub async fn add(db: &NodeDb, req: NewUser) -> Result<User, AccountError> {
    let name = req.name.trim().to_string();
    check_name(&name)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        AccountError::Invalid(format!(
            "role {:?} is unknown: use clerk (văn thư), records (lưu trữ) or admin",
            req.role
        ))
    })?;
    let full_name =
        text("the full name (full_name)", Some(&req.full_name), true)?.unwrap_or_default();
    let position = text("the position", req.position.as_deref(), false)?;
    let email = text("the email", req.email.as_deref(), false)?;
    if let Some(e) = &email
        && (!e.contains('@') || e.contains(char::is_whitespace))
    {
        return Err(AccountError::Invalid(format!(
            "{e:?} is not an email address"
        )));
    }
    check_password(&req.password)?;
    let user = User {
        name,
        full_name,
        position,
        email,
        role,
        password_hash: hash(req.password).await?,
        disabled: false,
        created_at: Timestamp::now(),
    };
    db.add_user(user.clone()).await?;
    Ok(user)
}

/// Applies a change to an account.
pub async fn change(db: &NodeDb, name: &str, req: ChangeUser) -> Result<User, AccountError> {
    let change = match (req.disabled, req.password) {
        (Some(true), None) => UserChange::Disable,
        (Some(false), None) => UserChange::Enable,
        (None, Some(p)) => {
            check_password(&p)?;
            UserChange::Password(hash(p).await?)
        }
        _ => {
            return Err(AccountError::Invalid(
                "give exactly one change: `disabled` (true or false) or `password`".into(),
            ));
        }
    };
    Ok(db.change_user(name.to_string(), change).await?)
}

/// What a person signs with: `Staff` = full name, `Department` = position, `Email`.
pub fn staff(user: &User) -> StaffSpec {
    StaffSpec {
        department: user.position.clone(),
        staff: Some(user.full_name.clone()),
        email: user.email.clone(),
        mobile: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_for_enabled_accounts() {
        let h = hash("mật khẩu đủ dài".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        let user = User {
            name: "lan".into(),
            full_name: "Nguyễn Thị Lan".into(),
            position: None,
            email: None,
            role: Role::Clerk,
            password_hash: h,
            disabled: false,
            created_at: Timestamp::now(),
        };
        assert!(
            verify(Some(user.clone()), "mật khẩu đủ dài".into())
                .await
                .is_some()
        );
        assert!(verify(Some(user.clone()), "sai".into()).await.is_none());
        assert!(verify(None, "mật khẩu đủ dài".into()).await.is_none());
        let disabled = User {
            disabled: true,
            ..user
        };
        assert!(
            verify(Some(disabled), "mật khẩu đủ dài".into())
                .await
                .is_none()
        );
        // The stand-in hash parses, so unknown names cost a real verification.
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("lan.nt").is_ok());
        assert!(check_name("Lan").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("đủ mười ký tự").is_ok());
        assert!(text("x", Some("a\nb"), false).is_err());
    }
}
