//! The architecture invariants of ARCHITECTURE.md, checked against the real dependency graph
//! (`cargo metadata`): a dependency that breaks them fails the suite, not a review.

use std::collections::BTreeMap;

use docaxis_e2e::repo_root;
use serde_json::Value;

/// Each workspace package and its normal (non-dev, non-build) dependencies.
fn normal_dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap_or_default().to_string())
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn the_dependency_graph_keeps_the_architecture_invariants() {
    let graph = normal_dependencies();
    let deps = |crate_name: &str| {
        graph
            .get(crate_name)
            .unwrap_or_else(|| panic!("no package {crate_name} in {:?}", graph.keys()))
    };
    assert!(
        !deps("docaxis-hub").iter().any(|d| d == "docaxis-node"),
        "the hub must never depend on the node: {:?}",
        deps("docaxis-hub")
    );
    assert!(
        !deps("docaxis-node").iter().any(|d| d == "docaxis-hub"),
        "the node talks to the hub over the wire only: {:?}",
        deps("docaxis-node")
    );
    for shared in ["docaxis-web", "docaxis-mail"] {
        assert!(
            !deps(shared)
                .iter()
                .any(|d| d == "docaxis-hub" || d == "docaxis-node"),
            "{shared} is shared by the hub and the node and depends on neither: {:?}",
            deps(shared)
        );
    }
    let runtime = [
        "tokio",
        "axum",
        "axum-server",
        "redb",
        "reqwest",
        "hyper",
        "rustls",
    ];
    for pure in [
        "docaxis-edxml",
        "docaxis-dsig",
        "docaxis-exchange",
        "docaxis-archive",
    ] {
        let bad: Vec<&String> = deps(pure)
            .iter()
            .filter(|d| runtime.contains(&d.as_str()))
            .collect();
        assert!(
            bad.is_empty(),
            "{pure} must not depend on a runtime, HTTP or database crate: {bad:?}"
        );
    }
    // The binary's modules are private: no library depends on it.
    for (name, d) in &graph {
        assert!(
            !d.iter().any(|x| x == "docaxis"),
            "{name} depends on the docaxis binary crate"
        );
    }
}
