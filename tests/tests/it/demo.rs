//! `docaxis demo`, the one-command tour, run as a user would: it makes its PKI, starts a hub
//! and three nodes, sends the công văn with its PDF to two provinces, waits for delivery and
//! both status 01 answers; Nghệ An takes it through 03 → 06 and Cao Bằng rejects it; the
//! demo prints both sides' histories, checks they agree, and exits 0.

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
    // The tracking summary: accepted and delivered for both recipients, and where each
    // recipient's process ended.
    assert!(text.contains("2/2 accepted, 2/2 delivered"), "{text}");
    assert!(
        text.contains("business:  1 rejected, 1 completed"),
        "{text}"
    );
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
        let (last, statuses) = if code == H41 {
            ("last status:   06 hoàn thành (completed)", 5)
        } else {
            ("last status:   02 từ chối tiếp nhận (rejected)", 2)
        };
        assert!(section.contains(last), "{code}:\n{section}");
        // The recipient's own record matches the sender's, status for status.
        assert!(
            text.contains(&format!(
                "= the sender's record: the same {statuses} statuses at the same times"
            )),
            "{code}:\n{text}"
        );
        // And each recipient's inbox lists the document.
        assert!(
            text.contains(&format!("{code}: 000.00.00.G22,")),
            "{code} inbox line missing:\n{text}"
        );
    }
    // The hub's own record agrees with the sender's, recipient by recipient.
    assert!(
        text.contains("000.00.00.H41: the hub agrees with the sender (completed, statuses 01 → 03 → 04 → 05 → 06)"),
        "{text}"
    );
    assert!(
        text.contains("000.00.00.H14: the hub agrees with the sender (rejected, statuses 01 → 02)"),
        "{text}"
    );
    for step in [
        "03 đã tiếp nhận (accepted) by Trần Thị Lan",
        "04 phân công (assigned) by Lê Văn Hùng",
        "05 đang xử lý (processing)",
        "06 hoàn thành (completed)",
        "02 từ chối tiếp nhận (rejected) by Hoàng Thị Hoa, Văn thư: Không thuộc thẩm quyền",
    ] {
        assert!(text.contains(step), "missing {step:?}:\n{text}");
    }
    assert!(text.contains("done:"), "{text}");
    // It used the folder it was given: the PKI, the hub's and the nodes' databases are there.
    assert!(dir.join("pki/ca.pem").exists());
    assert!(dir.join("hub/hub.redb").exists());
    for code in [G22, H41, H14] {
        assert!(dir.join(code).join("data/node.redb").exists(), "{code}");
    }
}
