//! Field access for the mapping: a located context ([`Ctx`]) and the children of one known
//! container claimed field by field ([`Fields`]), with the text, number and code parsers.
//!
//! Invariants: a singleton found twice is a [`ReadErrorKind::DuplicateElement`] located at the
//! second occurrence; required text is non-empty after trimming XML whitespace; optional text
//! that is empty counts as absent; whatever a container does not claim is reported by
//! [`Fields::finish`] (a misplaced `ds:Signature` is always refused).

use super::tree::{NONE, Ns, Tree};
use crate::agency::AgencyCode;
use crate::diagnostics::{ReadError, ReadErrorKind, Warning, WarningKind, locate_all};

/// Warnings kept per packet; more are counted, not stored (a hostile packet could otherwise
/// produce one per element).
pub(super) const MAX_WARNINGS: usize = 1000;

pub(super) struct Ctx<'t, 'a> {
    pub bytes: &'a [u8],
    pub tree: &'t Tree<'a>,
    pub strict: bool,
    /// (offset, path, kind), located at the end by [`Ctx::take_warnings`].
    pub warnings: Vec<(usize, String, WarningKind)>,
    pub omitted_warnings: usize,
}

pub(super) fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

impl<'t, 'a> Ctx<'t, 'a> {
    pub(super) fn err(&self, node: u32, kind: ReadErrorKind) -> ReadError {
        ReadError::at(
            self.bytes,
            self.tree.node(node).offset,
            self.tree.path(node),
            kind,
        )
    }

    /// Tolerated in lenient mode (warning), refused in strict mode.
    pub(super) fn issue(&mut self, node: u32, kind: WarningKind) -> Result<(), ReadError> {
        if self.strict {
            return Err(self.err(node, ReadErrorKind::Strict(kind)));
        }
        if self.warnings.len() >= MAX_WARNINGS {
            self.omitted_warnings += 1;
            return Ok(());
        }
        let n = self.tree.node(node);
        self.warnings.push((n.offset, self.tree.path(node), kind));
        Ok(())
    }

    /// The warnings, located in one pass over the input and sorted by position.
    pub(super) fn take_warnings(&mut self) -> Vec<Warning> {
        let mut pending = std::mem::take(&mut self.warnings);
        if self.omitted_warnings > 0 {
            pending.push((
                self.bytes.len(),
                "/".to_owned(),
                WarningKind::MoreWarningsOmitted {
                    count: self.omitted_warnings,
                },
            ));
        }
        locate_all(self.bytes, pending)
    }

    pub(super) fn local(&self, node: u32) -> &'a str {
        self.tree.node(node).local
    }

    /// Trimmed text of a leaf element.
    pub(super) fn text(&self, node: u32) -> Result<&'t str, ReadError> {
        let n = self.tree.node(node);
        if n.first_child != NONE || n.opaque {
            let child = if n.first_child != NONE {
                self.local(n.first_child).to_owned()
            } else {
                "Signature".to_owned()
            };
            return Err(self.err(
                node,
                ReadErrorKind::UnexpectedChildElement {
                    name: n.local.to_owned(),
                    child,
                },
            ));
        }
        Ok(trim_xml(&n.text))
    }

    pub(super) fn agency(&mut self, node: u32) -> Result<AgencyCode, ReadError> {
        let raw = self.text(node)?;
        if raw.is_empty() {
            return Err(self.err(
                node,
                ReadErrorKind::EmptyElement {
                    name: self.local(node).to_owned(),
                },
            ));
        }
        let code = AgencyCode::parse_lenient(raw).map_err(|e| self.err(node, e.into()))?;
        if !code.is_standard() {
            self.issue(
                node,
                WarningKind::NonStandardAgencyCode {
                    code: code.to_string(),
                },
            )?;
        }
        Ok(code)
    }

    /// An optional container counts as absent when it holds nothing at all.
    pub(super) fn is_blank(&self, node: u32) -> bool {
        let n = self.tree.node(node);
        n.first_child == NONE && !n.opaque && trim_xml(&n.text).is_empty()
    }
}

/// The children of one known container, claimed field by field.
pub(super) struct Fields {
    node: u32,
    pub kids: Vec<(u32, bool)>,
}

impl Fields {
    pub(super) fn of(ctx: &Ctx<'_, '_>, node: u32) -> Self {
        Self {
            node,
            kids: ctx.tree.children(node).map(|k| (k, false)).collect(),
        }
    }

    /// Claims every QCVN child named one of `names`.
    pub(super) fn claim(&mut self, ctx: &Ctx<'_, '_>, names: &[&str]) -> Vec<u32> {
        let mut found = Vec::new();
        for (k, claimed) in &mut self.kids {
            let n = ctx.tree.node(*k);
            if !*claimed && n.ns == Ns::Qcvn && names.contains(&n.local) {
                *claimed = true;
                found.push(*k);
            }
        }
        found
    }

    pub(super) fn opt_any(
        &mut self,
        ctx: &Ctx<'_, '_>,
        names: &[&str],
    ) -> Result<Option<u32>, ReadError> {
        let found = self.claim(ctx, names);
        if let Some(&second) = found.get(1) {
            return Err(ctx.err(
                second,
                ReadErrorKind::DuplicateElement {
                    name: ctx.local(second).to_owned(),
                },
            ));
        }
        Ok(found.first().copied())
    }

    /// Whether an unclaimed QCVN child `name` is there (claims nothing).
    pub(super) fn opt_peek(&self, ctx: &Ctx<'_, '_>, name: &str) -> bool {
        self.kids.iter().any(|(k, claimed)| {
            let n = ctx.tree.node(*k);
            !*claimed && n.ns == Ns::Qcvn && n.local == name
        })
    }

    pub(super) fn opt(&mut self, ctx: &Ctx<'_, '_>, name: &str) -> Result<Option<u32>, ReadError> {
        self.opt_any(ctx, &[name])
    }

    pub(super) fn one(&mut self, ctx: &Ctx<'_, '_>, name: &str) -> Result<u32, ReadError> {
        self.opt(ctx, name)?.ok_or_else(|| {
            ctx.err(
                self.node,
                ReadErrorKind::MissingElement {
                    name: name.to_owned(),
                },
            )
        })
    }

    pub(super) fn many(&mut self, ctx: &Ctx<'_, '_>, name: &str) -> Vec<u32> {
        self.claim(ctx, &[name])
    }

    pub(super) fn req_text(&mut self, ctx: &Ctx<'_, '_>, name: &str) -> Result<String, ReadError> {
        let id = self.one(ctx, name)?;
        let t = ctx.text(id)?;
        if t.is_empty() {
            return Err(ctx.err(
                id,
                ReadErrorKind::EmptyElement {
                    name: name.to_owned(),
                },
            ));
        }
        Ok(t.to_owned())
    }

    pub(super) fn opt_text(
        &mut self,
        ctx: &Ctx<'_, '_>,
        name: &str,
    ) -> Result<Option<String>, ReadError> {
        match self.opt(ctx, name)? {
            None => Ok(None),
            Some(id) => {
                let t = ctx.text(id)?;
                Ok((!t.is_empty()).then(|| t.to_owned()))
            }
        }
    }

    pub(super) fn req_parse<T, E: Into<ReadErrorKind>>(
        &mut self,
        ctx: &Ctx<'_, '_>,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ReadError> {
        let id = self.one(ctx, name)?;
        let t = ctx.text(id)?;
        if t.is_empty() {
            return Err(ctx.err(
                id,
                ReadErrorKind::EmptyElement {
                    name: name.to_owned(),
                },
            ));
        }
        parse(t).map_err(|e| ctx.err(id, e.into()))
    }

    pub(super) fn opt_parse<T, E: Into<ReadErrorKind>>(
        &mut self,
        ctx: &Ctx<'_, '_>,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ReadError> {
        let Some(id) = self.opt(ctx, name)? else {
            return Ok(None);
        };
        let t = ctx.text(id)?;
        if t.is_empty() {
            return Ok(None);
        }
        parse(t).map(Some).map_err(|e| ctx.err(id, e.into()))
    }

    pub(super) fn req_agency(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        name: &str,
    ) -> Result<AgencyCode, ReadError> {
        let id = self.one(ctx, name)?;
        ctx.agency(id)
    }

    /// Claims an optional container, treating an empty one as absent.
    pub(super) fn opt_container(
        &mut self,
        ctx: &Ctx<'_, '_>,
        name: &str,
    ) -> Result<Option<u32>, ReadError> {
        Ok(self.opt(ctx, name)?.filter(|&id| !ctx.is_blank(id)))
    }

    /// Reports what nobody claimed: unknown elements, a misplaced signature, stray text.
    pub(super) fn finish(self, ctx: &mut Ctx<'_, '_>) -> Result<(), ReadError> {
        for (k, claimed) in self.kids {
            if claimed {
                continue;
            }
            let n = ctx.tree.node(k);
            if n.ns == Ns::Dsig && n.local == "Signature" {
                return Err(ctx.err(k, ReadErrorKind::MisplacedSignature));
            }
            let kind = WarningKind::UnknownElement {
                name: n.local.to_owned(),
                namespace: n.ns.uri(),
            };
            ctx.issue(k, kind)?;
        }
        if ctx.tree.node(self.node).stray_text {
            let name = ctx.local(self.node).to_owned();
            ctx.issue(self.node, WarningKind::UnexpectedText { name })?;
        }
        Ok(())
    }
}

pub(super) fn number(name: &str) -> impl FnOnce(&str) -> Result<u32, ReadErrorKind> + '_ {
    move |s| {
        if !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && let Ok(v) = s.parse()
        {
            return Ok(v);
        }
        Err(ReadErrorKind::InvalidNumber {
            name: name.to_owned(),
            value: s.to_owned(),
        })
    }
}

pub(super) fn boolean(s: &str) -> Result<bool, ReadErrorKind> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ReadErrorKind::InvalidBoolean {
            name: "Direction".into(),
            value: s.to_owned(),
        }),
    }
}
