//! The XSD files of `schemas/`, embedded in the binary, and their in-memory composition.
//!
//! Owns: the table of embedded schema files (name → text) and the step that turns one
//! top-level schema plus everything it `xs:include`s into a single compiled
//! [`uppsala::XsdValidator`] (with the natively checked types handed over, see
//! [`super::substitute`]).
//!
//! Why composition happens here: uppsala resolves `schemaLocation` only from files on disk (and
//! silently skips a location it cannot find); DocAxis must not depend on schema files at run
//! time. So `xs:include` is resolved here, by name, against [`FILES`], before uppsala sees the
//! schema.
//!
//! Invariants:
//! - Nothing is read from disk or network; a `schemaLocation` that is not in [`FILES`] is an
//!   error, never skipped.
//! - Only same-namespace `xs:include` is supported. `xs:import`, `xs:redefine` and
//!   `xs:override` are refused with an error rather than ignored, so a future schema that
//!   needs them fails loudly at first use (and in the unit tests) instead of validating less.
//! - An included schema must declare the same `targetNamespace` and the same schema-wide
//!   defaults (`elementFormDefault`, `attributeFormDefault`, `blockDefault`, `finalDefault`)
//!   as the including one: uppsala reads those from the root of the composed document only.
//! - Each file is included at most once per composition (XSD include semantics), so cycles
//!   terminate.

use std::collections::HashSet;

use thiserror::Error;
use uppsala::dom::{Document, NodeId, NodeKind};
use uppsala::{Parser, XS_NAMESPACE, XsdValidator};

use super::substitute::{NativeElement, substitute};

/// A compiled top-level schema.
pub(crate) struct Compiled {
    /// uppsala's validator for everything but the natively checked types.
    pub(crate) validator: XsdValidator,
    /// The elements whose values Rust checks (see [`super::native`]).
    pub(crate) native: Vec<NativeElement>,
    /// The schema's target namespace.
    pub(crate) target_namespace: Option<String>,
}

/// One embedded schema file, named as `schemaLocation` refers to it (its file name in
/// `schemas/`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EmbeddedFile {
    pub(crate) name: &'static str,
    pub(crate) text: &'static str,
}

/// Every file of `schemas/` that a compiled schema may need. Adding a schema = one line here
/// (plus a [`super::SchemaKind`] variant if it is a top-level schema).
pub(crate) const FILES: &[EmbeddedFile] = &[
    EmbeddedFile {
        name: "edxml-common.xsd",
        text: include_str!("../../../schemas/edxml-common.xsd"),
    },
    EmbeddedFile {
        name: "edxml-document.xsd",
        text: include_str!("../../../schemas/edxml-document.xsd"),
    },
    EmbeddedFile {
        name: "edxml-status.xsd",
        text: include_str!("../../../schemas/edxml-status.xsd"),
    },
];

/// Schema-wide attributes that must agree between an including and an included schema.
const SCHEMA_DEFAULTS: &[&str] = &[
    "targetNamespace",
    "elementFormDefault",
    "attributeFormDefault",
    "blockDefault",
    "finalDefault",
];

/// Why an embedded schema could not be compiled. These are defects of the shipped schemas,
/// not of any packet.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SchemaBuildError {
    /// No embedded file has this name.
    #[error("no embedded schema file named `{0}`")]
    UnknownFile(String),
    /// An embedded file is not a well-formed XML document.
    #[error("embedded schema `{file}` is not well-formed: {message}")]
    NotWellFormed { file: String, message: String },
    /// An embedded file's root is not `xs:schema`.
    #[error("embedded schema `{file}` has no xs:schema root element")]
    NotASchema { file: String },
    /// `xs:include` without `schemaLocation`.
    #[error("embedded schema `{file}`: xs:include without schemaLocation")]
    IncludeWithoutLocation { file: String },
    /// A composition construct this module does not resolve.
    #[error(
        "embedded schema `{file}` uses xs:{construct}, which the embedded composition does not \
         support (only same-namespace xs:include is)"
    )]
    UnsupportedComposition { file: String, construct: String },
    /// An included schema disagrees with the including one on a schema-wide attribute.
    #[error(
        "embedded schema `{included}` has {attribute}={included_value:?} but `{including}` has \
         {including_value:?}; an included schema must agree"
    )]
    DefaultsMismatch {
        including: String,
        included: String,
        attribute: &'static str,
        including_value: Option<String>,
        included_value: Option<String>,
    },
    /// A natively checked type is not declared as its native check implements it.
    #[error(
        "embedded schema `{file}`: {type_name} must be {expected}, the semantics its native \
         check implements"
    )]
    NativeTypeMismatch {
        file: String,
        type_name: &'static str,
        expected: String,
    },
    /// A natively checked type is used other than as the type of an element declaration.
    #[error(
        "embedded schema `{file}`: {type_name} is checked natively and may only be the type of \
         element declarations, but {user} refers to it"
    )]
    NativeTypeMisuse {
        file: String,
        type_name: &'static str,
        user: String,
    },
    /// An element name is declared both with a natively checked type and with another type.
    #[error(
        "embedded schema `{file}`: element {element} is declared with {type_name} and with \
         another type; a natively checked element name must always have that type"
    )]
    NativeElementAmbiguous {
        file: String,
        element: String,
        type_name: &'static str,
    },
    /// uppsala refused the composed schema.
    #[error("schema `{file}` could not be compiled: {message}")]
    Compile { file: String, message: String },
}

/// Looks up a file by name in `files`.
fn file<'f>(files: &'f [EmbeddedFile], name: &str) -> Result<&'f EmbeddedFile, SchemaBuildError> {
    files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| SchemaBuildError::UnknownFile(name.to_owned()))
}

/// Compiles the embedded top-level schema `name` with everything it includes.
pub(crate) fn compile(name: &str) -> Result<Compiled, SchemaBuildError> {
    compile_from(FILES, name)
}

/// Compiles the top-level schema `name` of the file table `files`.
fn compile_from(files: &[EmbeddedFile], name: &str) -> Result<Compiled, SchemaBuildError> {
    let mut composed = compose(files, name)?;
    let root = composed
        .document_element()
        .ok_or_else(|| SchemaBuildError::NotASchema {
            file: name.to_owned(),
        })?;
    let target_namespace = composed
        .get_attribute(root, "targetNamespace")
        .map(str::to_owned);
    let native = substitute(&mut composed, root, name)?;
    let validator =
        XsdValidator::from_schema(&composed).map_err(|e| SchemaBuildError::Compile {
            file: name.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Compiled {
        validator,
        native,
        target_namespace,
    })
}

/// Parses `name` and splices the top-level components of every (transitively) included file
/// in place of its `xs:include` element.
fn compose(files: &[EmbeddedFile], name: &str) -> Result<Document<'static>, SchemaBuildError> {
    let main = parse_schema(file(files, name)?)?;
    let mut doc = main.doc;
    let root = main.root;
    let mut included: HashSet<&'static str> = HashSet::from([file(files, name)?.name]);

    while let Some(include) = first_composition_child(&doc, root, name)? {
        let location = doc
            .get_attribute(include, "schemaLocation")
            .ok_or_else(|| SchemaBuildError::IncludeWithoutLocation {
                file: name.to_owned(),
            })?
            .to_owned();
        let target = file(files, &location)?;
        if included.insert(target.name) {
            let sub = parse_schema(target)?;
            check_defaults(&doc, root, name, &sub.doc, sub.root, target.name)?;
            let declarations: Vec<(String, String)> = sub
                .doc
                .element(sub.root)
                .map(|e| {
                    e.namespace_declarations
                        .iter()
                        .map(|(p, u)| (p.to_string(), u.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            for child in sub.doc.children(sub.root) {
                if !matches!(sub.doc.node_kind(child), Some(NodeKind::Element(_))) {
                    continue;
                }
                let Some(copy) = doc.import_subtree(&sub.doc, child) else {
                    continue;
                };
                // The copied component resolves QName references (type="edXML:...") through
                // the prefixes of the file it came from, not of the including file.
                for (prefix, uri) in &declarations {
                    let already = doc
                        .element(copy)
                        .is_some_and(|e| e.namespace_declarations.iter().any(|(p, _)| p == prefix));
                    if !already {
                        doc.declare_namespace(copy, Some(prefix), uri.clone());
                    }
                }
                doc.insert_before(root, copy, include);
            }
        }
        doc.remove_child(root, include);
    }
    Ok(doc)
}

struct ParsedSchema {
    doc: Document<'static>,
    root: NodeId,
}

fn parse_schema(file: &EmbeddedFile) -> Result<ParsedSchema, SchemaBuildError> {
    let doc = Parser::new()
        .with_forbid_dtd(true)
        .parse(file.text)
        .map_err(|e| SchemaBuildError::NotWellFormed {
            file: file.name.to_owned(),
            message: e.to_string(),
        })?;
    let root = doc
        .document_element()
        .filter(|&r| is_xs(&doc, r, "schema"))
        .ok_or_else(|| SchemaBuildError::NotASchema {
            file: file.name.to_owned(),
        })?;
    Ok(ParsedSchema { doc, root })
}

fn is_xs(doc: &Document<'_>, node: NodeId, local: &str) -> bool {
    doc.element(node)
        .is_some_and(|e| e.name.matches(Some(XS_NAMESPACE), local))
}

/// The first `xs:include` child of the schema root; errors on the constructs we refuse.
fn first_composition_child(
    doc: &Document<'_>,
    root: NodeId,
    file: &str,
) -> Result<Option<NodeId>, SchemaBuildError> {
    for child in doc.children(root) {
        for construct in ["import", "redefine", "override"] {
            if is_xs(doc, child, construct) {
                return Err(SchemaBuildError::UnsupportedComposition {
                    file: file.to_owned(),
                    construct: construct.to_owned(),
                });
            }
        }
        if is_xs(doc, child, "include") {
            return Ok(Some(child));
        }
    }
    Ok(None)
}

fn check_defaults(
    including: &Document<'_>,
    including_root: NodeId,
    including_name: &str,
    included: &Document<'_>,
    included_root: NodeId,
    included_name: &str,
) -> Result<(), SchemaBuildError> {
    for &attribute in SCHEMA_DEFAULTS {
        let a = including.get_attribute(including_root, attribute);
        let b = included.get_attribute(included_root, attribute);
        if a != b {
            return Err(SchemaBuildError::DefaultsMismatch {
                including: including_name.to_owned(),
                included: included_name.to_owned(),
                attribute,
                including_value: a.map(str::to_owned),
                included_value: b.map(str::to_owned),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
        xmlns:t="urn:t" targetNamespace="urn:t" elementFormDefault="qualified""#;

    fn table(files: &[(&'static str, &'static str)]) -> Vec<EmbeddedFile> {
        files
            .iter()
            .map(|&(name, text)| EmbeddedFile { name, text })
            .collect()
    }

    #[test]
    fn every_embedded_file_is_a_schema() {
        for f in FILES {
            parse_schema(f).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn composition_removes_every_include_and_keeps_the_common_types() {
        let doc = compose(FILES, "edxml-document.xsd").unwrap();
        let root = doc.document_element().unwrap();
        assert!(
            doc.children(root)
                .iter()
                .all(|&c| !is_xs(&doc, c, "include")),
            "an xs:include survived composition"
        );
        let names: Vec<&str> = doc
            .children(root)
            .into_iter()
            .filter_map(|c| doc.get_attribute(c, "name"))
            .collect();
        assert!(
            names.contains(&"AgencyCodeType"),
            "common type missing: {names:?}"
        );
        assert!(
            names.contains(&"DocumentPacketType"),
            "own type missing: {names:?}"
        );
    }

    #[test]
    fn included_components_resolve_their_own_prefixes() {
        // The included file binds the target namespace to another prefix (`u`) than the
        // including one (`t`); its references must still resolve.
        let main = Box::leak(
            format!(
                r#"{HEAD}><xs:include schemaLocation="b.xsd"/>
                <xs:element name="r" type="t:Wrapper"/></xs:schema>"#
            )
            .into_boxed_str(),
        );
        let files = table(&[
            ("a.xsd", main),
            (
                "b.xsd",
                r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:u="urn:t"
                    targetNamespace="urn:t" elementFormDefault="qualified">
                  <xs:simpleType name="Digit"><xs:restriction base="xs:string">
                    <xs:pattern value="[0-9]"/></xs:restriction></xs:simpleType>
                  <xs:complexType name="Wrapper"><xs:sequence>
                    <xs:element name="v" type="u:Digit"/></xs:sequence></xs:complexType>
                </xs:schema>"#,
            ),
        ]);
        let v = compile_from(&files, "a.xsd").unwrap().validator;
        let ok = uppsala::parse(r#"<r xmlns="urn:t"><v>7</v></r>"#).unwrap();
        assert!(v.validate(&ok).is_empty());
        let bad = uppsala::parse(r#"<r xmlns="urn:t"><v>x</v></r>"#).unwrap();
        assert_eq!(v.validate(&bad).len(), 1);
    }

    #[test]
    fn a_cyclic_include_terminates() {
        let main = Box::leak(
            format!(
                r#"{HEAD}><xs:include schemaLocation="b.xsd"/><xs:element name="r"/></xs:schema>"#
            )
            .into_boxed_str(),
        );
        let other = Box::leak(
            format!(r#"{HEAD}><xs:include schemaLocation="a.xsd"/></xs:schema>"#).into_boxed_str(),
        );
        let files = table(&[("a.xsd", main), ("b.xsd", other)]);
        compile_from(&files, "a.xsd").unwrap();
    }

    #[test]
    fn unknown_file_is_an_error_not_a_skip() {
        assert_eq!(
            compile("no-such.xsd").err(),
            Some(SchemaBuildError::UnknownFile("no-such.xsd".into()))
        );
        let main = Box::leak(
            format!(r#"{HEAD}><xs:include schemaLocation="gone.xsd"/></xs:schema>"#)
                .into_boxed_str(),
        );
        assert_eq!(
            compile_from(&table(&[("a.xsd", main)]), "a.xsd").err(),
            Some(SchemaBuildError::UnknownFile("gone.xsd".into()))
        );
    }

    #[test]
    fn import_is_refused_not_ignored() {
        let main = Box::leak(
            format!(
                r#"{HEAD}><xs:import namespace="http://www.w3.org/2000/09/xmldsig#"
                    schemaLocation="xmldsig.xsd"/></xs:schema>"#
            )
            .into_boxed_str(),
        );
        assert_eq!(
            compile_from(&table(&[("a.xsd", main)]), "a.xsd").err(),
            Some(SchemaBuildError::UnsupportedComposition {
                file: "a.xsd".into(),
                construct: "import".into()
            })
        );
    }

    #[test]
    fn included_schema_with_other_defaults_is_refused() {
        let main = Box::leak(
            format!(r#"{HEAD}><xs:include schemaLocation="b.xsd"/></xs:schema>"#).into_boxed_str(),
        );
        let files = table(&[
            ("a.xsd", main),
            (
                "b.xsd",
                r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
                    targetNamespace="urn:t"/>"#,
            ),
        ]);
        assert!(matches!(
            compile_from(&files, "a.xsd"),
            Err(SchemaBuildError::DefaultsMismatch {
                attribute: "elementFormDefault",
                ..
            })
        ));
    }

    const B64_DECL: &str = r#"<xs:simpleType name="Base64PayloadType">
        <xs:restriction base="xs:base64Binary">FACETS</xs:restriction>
      </xs:simpleType>"#;
    const B64_FACETS: &str = r#"<xs:minLength value="1"/>"#;

    fn with_payload_type(facets: &str, rest: &str) -> Vec<EmbeddedFile> {
        let decl = B64_DECL.replace("FACETS", facets);
        let text = Box::leak(format!("{HEAD}>{decl}{rest}</xs:schema>").into_boxed_str());
        table(&[("a.xsd", text)])
    }

    #[test]
    fn the_payload_type_is_checked_natively_in_document_packets_only() {
        let doc = compile("edxml-document.xsd").unwrap();
        assert_eq!(
            doc.native,
            vec![NativeElement {
                namespace: Some("http://www.mic.gov.vn/TBT/QCVN_102_2016".into()),
                local_name: "ContentTransferEncoded".into(),
                check: super::super::native::NativeType::Base64Payload,
            }]
        );
        assert!(compile("edxml-status.xsd").unwrap().native.is_empty());
    }

    #[test]
    fn the_relaxed_payload_type_accepts_anything_for_uppsala() {
        let files = with_payload_type(
            B64_FACETS,
            r#"<xs:element name="p" type="t:Base64PayloadType"/>"#,
        );
        let compiled = compile_from(&files, "a.xsd").unwrap();
        let doc = uppsala::parse(r#"<p xmlns="urn:t">not base64 at all</p>"#).unwrap();
        assert!(compiled.validator.validate(&doc).is_empty());
        assert_eq!(compiled.native.len(), 1);
    }

    #[test]
    fn a_payload_type_that_drifted_from_the_native_check_is_refused() {
        for drifted in [
            r#"<xs:minLength value="0"/>"#,
            r#"<xs:minLength value="1"/><xs:maxLength value="9"/>"#,
            r#"<xs:pattern value="[A-Za-z0-9+/=]*"/>"#,
            "",
        ] {
            let files = with_payload_type(drifted, "");
            assert!(
                matches!(
                    compile_from(&files, "a.xsd"),
                    Err(SchemaBuildError::NativeTypeMismatch {
                        type_name: "Base64PayloadType",
                        ..
                    })
                ),
                "{drifted}"
            );
        }
    }

    #[test]
    fn the_payload_type_may_only_type_elements() {
        let files = with_payload_type(
            B64_FACETS,
            r#"<xs:element name="p"><xs:complexType>
                 <xs:attribute name="a" type="t:Base64PayloadType"/>
               </xs:complexType></xs:element>"#,
        );
        assert!(matches!(
            compile_from(&files, "a.xsd"),
            Err(SchemaBuildError::NativeTypeMisuse { .. })
        ));
    }

    #[test]
    fn a_payload_element_name_cannot_also_have_another_type() {
        let files = with_payload_type(
            B64_FACETS,
            r#"<xs:element name="r"><xs:complexType><xs:sequence>
                 <xs:element name="p" type="t:Base64PayloadType"/>
                 <xs:element name="q"><xs:complexType><xs:sequence>
                   <xs:element name="p" type="xs:string"/>
                 </xs:sequence></xs:complexType></xs:element>
               </xs:sequence></xs:complexType></xs:element>"#,
        );
        assert!(matches!(
            compile_from(&files, "a.xsd"),
            Err(SchemaBuildError::NativeElementAmbiguous { .. })
        ));
    }
}
