//! `metadata.xml`: the records metadata of the document, with the fields Nghị định
//! 30/2020/NĐ-CP (Phụ lục VI) asks of documents sent and received, filled from the signed
//! packet and the node's own records (namespace [`METADATA_NS`]; README, "Records", lists
//! each field and where it comes from).
//!
//! Invariant: every value is escaped; a field the packet does not carry is written empty
//! (`<SoTrang/>`), never guessed.

use edxml::DocumentPacket;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::xml::escape;

/// Namespace of the records metadata.
pub const METADATA_NS: &str = "urn:docaxis:records:nd30-2020:1";

/// What the node's records add to the packet.
#[derive(Debug, Clone)]
pub struct Records {
    /// `sent` (văn bản đi) or `received` (văn bản đến).
    pub direction: String,
    /// The document's number in the node's register of that year and direction.
    pub register_number: u64,
    /// Received documents: when the node stored it.
    pub received_at: Option<OffsetDateTime>,
    /// Where the processing stands at the node (`06`, `revoked`, `open`, …).
    pub state: String,
}

fn el(out: &mut String, indent: &str, name: &str, value: Option<&str>) {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => out.push_str(&format!("{indent}<{name}>{}</{name}>\n", escape(v))),
        None => out.push_str(&format!("{indent}<{name}/>\n")),
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Writes the metadata of `doc`.
pub fn to_xml(doc: &DocumentPacket, records: &Records) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let kind = if records.direction == "received" {
        "den"
    } else {
        "di"
    };
    s.push_str(&format!(
        "<VanBan xmlns=\"{METADATA_NS}\" loai=\"{kind}\">\n"
    ));
    el(&mut s, "  ", "MaDinhDanh", Some(doc.document_id.as_str()));
    // Mã hồ sơ is assigned when the records system files the document into a hồ sơ.
    el(&mut s, "  ", "MaHoSo", None);
    el(
        &mut s,
        "  ",
        "SoThuTu",
        Some(&records.register_number.to_string()),
    );
    let type_name = doc
        .document_type
        .type_name
        .clone()
        .unwrap_or_else(|| format!("loại {}", doc.document_type.type_code));
    el(&mut s, "  ", "TenLoai", Some(&type_name));
    el(&mut s, "  ", "So", Some(&doc.code.code_number));
    el(&mut s, "  ", "KyHieu", Some(&doc.code.code_notation));
    el(
        &mut s,
        "  ",
        "NgayBanHanh",
        Some(&doc.promulgation_info.promulgation_date.date().to_string()),
    );
    el(
        &mut s,
        "  ",
        "NoiBanHanh",
        doc.promulgation_info.place.as_deref(),
    );
    s.push_str(&format!(
        "  <CoQuanBanHanh ma=\"{}\">{}</CoQuanBanHanh>\n",
        escape(doc.from.organ_id.as_str()),
        escape(&doc.from.organ_name)
    ));
    el(&mut s, "  ", "TrichYeu", Some(&doc.subject));
    // edXML carries no language; documents of the national axis are in Vietnamese.
    el(&mut s, "  ", "NgonNgu", Some("Tiếng Việt"));
    let other = doc.other_info.clone().unwrap_or_default();
    el(
        &mut s,
        "  ",
        "SoTrang",
        other.page_amount.map(|n| n.to_string()).as_deref(),
    );
    match &doc.signer_info {
        Some(signer) => {
            s.push_str("  <NguoiKy>\n");
            el(&mut s, "    ", "HoTen", Some(&signer.full_name));
            el(&mut s, "    ", "ChucVu", signer.position.as_deref());
            el(&mut s, "    ", "ThamQuyen", signer.competence.as_deref());
            s.push_str("  </NguoiKy>\n");
        }
        None => s.push_str("  <NguoiKy/>\n"),
    }
    s.push_str("  <NoiNhan>\n");
    for to in &doc.to {
        s.push_str(&format!(
            "    <CoQuan ma=\"{}\">{}</CoQuan>\n",
            escape(to.organ_id.as_str()),
            escape(&to.organ_name)
        ));
    }
    for place in &doc.to_places {
        el(&mut s, "    ", "NoiNhanKhac", Some(place));
    }
    s.push_str("  </NoiNhan>\n");
    s.push_str(&format!(
        "  <DoKhan ma=\"{}\">{}</DoKhan>\n",
        other.priority.code(),
        escape(other.priority.label_vi())
    ));
    el(
        &mut s,
        "  ",
        "SoLuongBan",
        other.promulgation_amount.map(|n| n.to_string()).as_deref(),
    );
    el(
        &mut s,
        "  ",
        "HanXuLy",
        doc.due_date.map(|d| d.date().to_string()).as_deref(),
    );
    if records.direction == "received" {
        el(
            &mut s,
            "  ",
            "NgayDen",
            records.received_at.map(rfc3339).as_deref(),
        );
        el(
            &mut s,
            "  ",
            "SoDen",
            Some(&records.register_number.to_string()),
        );
        s.push_str("  <VetChuyen>\n");
        for t in &doc.trace_headers {
            s.push_str(&format!(
                "    <Diem ma=\"{}\" thoiGian=\"{}\"/>\n",
                escape(t.organ_id.as_str()),
                escape(&rfc3339(t.timestamp.to_offset_date_time()))
            ));
        }
        s.push_str("  </VetChuyen>\n");
    }
    el(&mut s, "  ", "TrangThaiXuLy", Some(&records.state));
    s.push_str("</VanBan>\n");
    s.into_bytes()
}
