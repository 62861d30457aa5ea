//! Handing the natively checked simple types (see [`super::native`]) over from uppsala to Rust.
//!
//! Owns: the rewrite of a composed schema document in which each native type's declaration is
//! verified against what the native check implements and then relaxed to `xs:string`, and the
//! list of element names whose values the native check must then judge.
//!
//! Invariants:
//! - The rewrite happens only if the declaration is exactly the one the native check implements
//!   (built-in base and facets); anything else is a [`SchemaBuildError`], never a silent
//!   weakening of the schema.
//! - A native type may only be used as the `type` of element declarations, and every element
//!   declaration with such a name (in its namespace) must use it, so that "the element named
//!   X" identifies the values to check natively without ambiguity.

use uppsala::XS_NAMESPACE;
use uppsala::dom::{Document, NodeId, NodeKind};
use uppsala::namespace::build_resolver_for_node;

use super::embedded::SchemaBuildError;
use super::native::NativeType;

/// An element whose value is checked natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NativeElement {
    pub(crate) namespace: Option<String>,
    pub(crate) local_name: String,
    pub(crate) check: NativeType,
}

/// An expanded name: (namespace URI, local name).
type ExpandedName = (Option<String>, String);

/// Rewrites every native type declared in `doc` and returns the elements to check natively.
pub(crate) fn substitute(
    doc: &mut Document<'static>,
    root: NodeId,
    file: &str,
) -> Result<Vec<NativeElement>, SchemaBuildError> {
    let tns = doc
        .get_attribute(root, "targetNamespace")
        .map(str::to_owned);
    let qualified = doc.get_attribute(root, "elementFormDefault") == Some("qualified");
    let mut natives = Vec::new();
    for check in NativeType::ALL {
        let declaration = check.declaration();
        let (type_name, base) = (declaration.type_name, declaration.base);
        let Some(decl) = doc.children(root).into_iter().find(|&c| {
            is_xs(doc, c, "simpleType") && doc.get_attribute(c, "name") == Some(type_name)
        }) else {
            continue;
        };
        let mismatch = || SchemaBuildError::NativeTypeMismatch {
            file: file.to_owned(),
            type_name,
            expected: format!(
                "a restriction of xs:{base} with exactly the facets {}",
                declaration
                    .facets
                    .iter()
                    .map(|(f, v)| format!("{f}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        };
        let restriction = only_child(doc, decl, "restriction").ok_or_else(mismatch)?;
        let base_ok = doc
            .get_attribute(restriction, "base")
            .and_then(|b| resolve(doc, restriction, b))
            == Some((Some(XS_NAMESPACE.to_owned()), base.to_owned()));
        let facets = element_children(doc, restriction);
        let facets_ok = facets.len() == declaration.facets.len()
            && facets
                .iter()
                .zip(declaration.facets)
                .all(|(&f, &(name, value))| {
                    is_xs(doc, f, name) && doc.get_attribute(f, "value") == Some(value)
                });
        if !base_ok || !facets_ok {
            return Err(mismatch());
        }

        // Relax the declaration: uppsala now accepts any text there; Rust judges it.
        let prefix = doc
            .element(restriction)
            .and_then(|e| e.name.prefix.as_deref().map(str::to_owned))
            .unwrap_or_default();
        let relaxed = if prefix.is_empty() {
            "string".to_owned()
        } else {
            format!("{prefix}:string")
        };
        if let Some(a) = doc.element_mut(restriction).and_then(|e| {
            e.attributes
                .iter_mut()
                .find(|a| a.name.local_name == "base")
        }) {
            a.value = relaxed.into();
        }
        for facet in facets {
            doc.remove_child(restriction, facet);
        }

        let target: ExpandedName = (tns.clone(), type_name.to_owned());
        let declared = element_declarations(doc, root, &tns, qualified);
        check_only_element_types_use(doc, root, &target, file, type_name)?;
        let users: Vec<ExpandedName> = declared
            .iter()
            .filter(|(_, ty)| ty.as_ref() == Some(&target))
            .map(|(name, _)| name.clone())
            .collect();
        for name in &users {
            if declared
                .iter()
                .any(|(other, ty)| other == name && ty.as_ref() != Some(&target))
            {
                return Err(SchemaBuildError::NativeElementAmbiguous {
                    file: file.to_owned(),
                    element: name.1.clone(),
                    type_name,
                });
            }
            let native = NativeElement {
                namespace: name.0.clone(),
                local_name: name.1.clone(),
                check,
            };
            if !natives.contains(&native) {
                natives.push(native);
            }
        }
    }
    Ok(natives)
}

fn is_xs(doc: &Document<'_>, node: NodeId, local: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.name.matches(Some(XS_NAMESPACE), local))
}

/// The element children of `node`, xs:annotation excepted.
fn element_children(doc: &Document<'_>, node: NodeId) -> Vec<NodeId> {
    doc.children(node)
        .into_iter()
        .filter(|&c| matches!(doc.node_kind(c), Some(NodeKind::Element(_))))
        .filter(|&c| !is_xs(doc, c, "annotation"))
        .collect()
}

/// The single element child of `node` named xs:`local`, ignoring xs:annotation; `None` if there
/// is any other element child.
fn only_child(doc: &Document<'_>, node: NodeId, local: &str) -> Option<NodeId> {
    let children = element_children(doc, node);
    match children.as_slice() {
        [one] if is_xs(doc, *one, local) => Some(*one),
        _ => None,
    }
}

/// Resolves a QName attribute value in the scope of `node` (unprefixed: default namespace).
fn resolve(doc: &Document<'_>, node: NodeId, qname: &str) -> Option<ExpandedName> {
    let resolver = build_resolver_for_node(doc, node);
    match qname.trim().split_once(':') {
        Some((prefix, local)) => resolver
            .resolve(prefix)
            .map(|uri| (Some(uri.to_string()), local.to_owned())),
        None => Some((
            resolver
                .resolve_default()
                .map(|u| u.to_string())
                .filter(|u| !u.is_empty()),
            qname.trim().to_owned(),
        )),
    }
}

/// Every named element declaration: (its expanded name, its `type` if it has one).
fn element_declarations(
    doc: &Document<'_>,
    root: NodeId,
    tns: &Option<String>,
    qualified: bool,
) -> Vec<(ExpandedName, Option<ExpandedName>)> {
    doc.descendants(root)
        .into_iter()
        .filter(|&n| is_xs(doc, n, "element"))
        .filter_map(|n| {
            let name = doc.get_attribute(n, "name")?;
            let global = doc.parent(n) == Some(root);
            let in_tns = global
                || match doc.get_attribute(n, "form") {
                    Some(form) => form == "qualified",
                    None => qualified,
                };
            let ns = if in_tns { tns.clone() } else { None };
            let ty = doc
                .get_attribute(n, "type")
                .and_then(|t| resolve(doc, n, t));
            Some(((ns, name.to_owned()), ty))
        })
        .collect()
}

/// Refuses any reference to `target` other than `xs:element/@type`.
fn check_only_element_types_use(
    doc: &Document<'_>,
    root: NodeId,
    target: &ExpandedName,
    file: &str,
    type_name: &'static str,
) -> Result<(), SchemaBuildError> {
    for n in doc.descendants(root) {
        let Some(e) = doc.element(n) else { continue };
        for attr in &e.attributes {
            let local = attr.name.local_name.as_ref();
            let allowed = local == "type" && is_xs(doc, n, "element");
            let refs: Vec<&str> = match local {
                "type" | "base" | "itemType" => vec![attr.value.as_ref()],
                "memberTypes" => attr.value.split_whitespace().collect(),
                _ => continue,
            };
            if !allowed
                && refs
                    .iter()
                    .any(|r| resolve(doc, n, r).as_ref() == Some(target))
            {
                return Err(SchemaBuildError::NativeTypeMisuse {
                    file: file.to_owned(),
                    type_name,
                    user: format!("xs:{} @{local}", e.name.local_name),
                });
            }
        }
    }
    Ok(())
}
