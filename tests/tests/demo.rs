//! `docaxis demo`, the one-command tour, run as a user would: it makes its PKI, starts a hub
//! and three nodes, sends the công văn with its PDF to two provinces, waits for delivery and
//! both status 01 answers, prints the tracking, and exits 0.

use docaxis_e2e::*;

#[test]
fn demo_delivers_to_both_provinces_and_prints_the_tracking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = run(&["demo", "--dir", s(&dir), "--timeout", "60"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "docaxis demo failed ({:?}):\n{text}\n{}",
        out.status,
        stderr(&out)
    );
    // The tracking summary: accepted and delivered for both recipients.
    assert!(text.contains("2/2 accepted, 2/2 delivered"), "{text}");
    // Both recipients, each with a delivery time and status 01 as its last status.
    for code in [H41, H14] {
        let section = text
            .split(&format!("\n{code}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no tracking section for {code}:\n{text}"));
        let section = section.split("\n\n").next().unwrap();
        let delivered = section
            .lines()
            .find(|l| l.trim_start().starts_with("delivered:"))
            .unwrap_or_else(|| panic!("no delivered line for {code}:\n{section}"));
        assert!(
            !delivered.contains('–'),
            "{code} not delivered: {delivered}"
        );
        assert!(
            section.contains("last status:   01 đã đến (received)"),
            "{code}:\n{section}"
        );
        // And each recipient's inbox lists the document.
        assert!(
            text.contains(&format!("{code}: 000.00.00.G22,")),
            "{code} inbox line missing:\n{text}"
        );
    }
    assert!(text.contains("done:"), "{text}");
    // It used the folder it was given: the PKI, the hub's and the nodes' databases are there.
    assert!(dir.join("pki/ca.pem").exists());
    assert!(dir.join("hub/hub.redb").exists());
    for code in [G22, H41, H14] {
        assert!(dir.join(code).join("data/node.redb").exists(), "{code}");
    }
}
