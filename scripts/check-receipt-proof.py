#!/usr/bin/python3
"""Checks a batch-signed DocAxis hub receipt, independently of DocAxis.

Usage: check-receipt-proof.py --hub HUB.pem RECEIPT.xml HEAD_OUT.xml

The rule (schemas/hub-receipt.xsd, README "Hub receipts, one signature per batch"):
  the receipt's last child is <Batch> holding <Index>, <Hash>* and <Head>, nothing else;
  U    = the receipt with the bytes from "<Batch>" to "</Batch>" inclusive deleted
         (the receipt's fields are read from U, the bytes the hub hashed)
  leaf = SHA-256(0x00 || U)
  the Hash elements are the RFC 9162 inclusion path of leaf number Index, from the leaf up;
  Head is the base64 of the hub-signed ReceiptBatch whose Size and Root the path must fit.

Exits 0 when the path leads from U to the head's Root, the head is a plain ReceiptBatch (no
DTD, comment, CDATA or processing instruction: what its signature does not cover could not be
read differently) and its signature carries exactly the certificates of HUB.pem. It writes the
signed tree head to HEAD_OUT.xml for the signature check:
  xmlsec1 --verify --trusted-pem ca.pem --enabled-key-data x509 HEAD_OUT.xml
Only the Python standard library is used.
"""
import argparse
import base64
import hashlib
import re
import sys
import xml.etree.ElementTree as ET

NS = "urn:docaxis:hub-receipt:1"
DS = "http://www.w3.org/2000/09/xmldsig#"
BATCH = re.compile(
    rb"<Batch>\s*<Index>(\d+)</Index>((?:\s*<Hash>[0-9a-f]{64}</Hash>)*)"
    rb"\s*<Head>([A-Za-z0-9+/=\s]+)</Head>\s*</Batch>"
)


class Refused(Exception):
    pass


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(index, size, leaf, path):
    # RFC 9162, section 2.1.3.2.
    if index >= size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def pem_certificates(pem):
    blocks = re.findall(
        rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S
    )
    return [base64.b64decode(b"".join(b.split())) for b in blocks]


def plain(xml, what):
    """Refuses what a signature does not cover or a parser could read differently."""
    body = re.sub(rb"^<\?xml[^>]*\?>", b"", xml.lstrip())
    for bad, name in ((b"<!DOCTYPE", "a DTD"), (b"<!--", "a comment"),
                      (b"<![CDATA[", "a CDATA section"), (b"<?", "a processing instruction")):
        if bad in body:
            raise Refused(f"{what} holds {name}")


def check(receipt, hub_pem):
    if receipt.count(b"<Batch>") != 1 or receipt.count(b"</Batch>") != 1:
        raise Refused("not a batch-signed receipt (one <Batch> element expected)")
    start = receipt.index(b"<Batch>")
    end = receipt.index(b"</Batch>") + len(b"</Batch>")
    tail = receipt[end:].strip()
    if tail != b"</HubReceipt>":
        raise Refused("<Batch> is not the last child of HubReceipt")
    found = BATCH.fullmatch(receipt[start:end])
    if not found:
        raise Refused("<Batch> holds something other than Index, Hash and Head")
    unsigned = receipt[:start] + receipt[end:]
    plain(unsigned, "the receipt")
    fields = ET.fromstring(unsigned)
    if fields.tag != f"{{{NS}}}HubReceipt":
        raise Refused("the receipt is not a HubReceipt")
    if fields.find(f"{{{DS}}}Signature") is not None:
        raise Refused("the receipt has a ds:Signature as well as a batch proof")
    index = int(found.group(1))
    path = [bytes.fromhex(h.decode()) for h in re.findall(rb"[0-9a-f]{64}", found.group(2))]
    head = base64.b64decode(b"".join(found.group(3).split()), validate=True)

    plain(head, "the tree head")
    tree = ET.fromstring(head)
    if tree.tag != f"{{{NS}}}ReceiptBatch":
        raise Refused("the tree head is not a ReceiptBatch")
    children = {}
    for child in tree:
        children.setdefault(child.tag, []).append(child)
    sizes, roots = children.get(f"{{{NS}}}Size", []), children.get(f"{{{NS}}}Root", [])
    if len(sizes) != 1 or len(roots) != 1:
        raise Refused("the tree head must hold exactly one Size and one Root")
    size = int(sizes[0].text.strip())
    root = bytes.fromhex(roots[0].text.strip())
    carried = [
        base64.b64decode("".join(c.text.split()))
        for c in tree.iter(f"{{{DS}}}X509Certificate")
    ]
    if sorted(carried) != sorted(pem_certificates(hub_pem)):
        raise Refused("the tree head is not signed with the hub certificate given")

    if root_from_path(index, size, hashlib.sha256(b"\x00" + unsigned).digest(), path) != root:
        raise Refused(f"leaf {index} of {size} does not lead to the signed root")
    return index, size, root, head


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("--hub", required=True, help="the hub's certificate (PEM)")
    args.add_argument("receipt")
    args.add_argument("head_out")
    a = args.parse_args()
    try:
        with open(a.hub, "rb") as f:
            hub_pem = f.read()
        with open(a.receipt, "rb") as f:
            index, size, root, head = check(f.read(), hub_pem)
    except (Refused, ValueError, ET.ParseError) as e:
        print(f"proof FAILS: {e}")
        return 1
    with open(a.head_out, "wb") as f:
        f.write(head)
    print(f"proof holds: leaf {index} of {size} leads to root {root.hex()}, "
          f"signed with the hub certificate given")
    return 0


if __name__ == "__main__":
    sys.exit(main())
