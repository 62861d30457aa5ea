#!/usr/bin/python3
"""Checks a batch-signed DocAxis hub receipt's inclusion proof, independently of DocAxis.

Usage: check-receipt-proof.py RECEIPT.xml HEAD_OUT.xml

The rule (schemas/hub-receipt.xsd, README "Hub receipts, one signature per batch"):
  U    = the receipt with the bytes from "<Batch>" to "</Batch>" inclusive deleted
  leaf = SHA-256(0x00 || U)
  the Hash elements are the RFC 9162 inclusion path of leaf number Index, from the leaf up;
  Head is the base64 of the hub-signed ReceiptBatch whose Size and Root the path must fit.

Writes the signed tree head to HEAD_OUT.xml, for
  xmlsec1 --verify --trusted-pem ca.pem --enabled-key-data x509 HEAD_OUT.xml
and exits 0 when the path leads from the receipt to the head's Root, 1 otherwise.
Only the Python standard library is used.
"""
import base64
import hashlib
import re
import sys


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


def main():
    receipt = open(sys.argv[1], "rb").read()
    if receipt.count(b"<Batch>") != 1 or receipt.count(b"</Batch>") != 1:
        print("not a batch-signed receipt (one <Batch> element expected)")
        return 1
    start = receipt.index(b"<Batch>")
    end = receipt.index(b"</Batch>") + len(b"</Batch>")
    unsigned, batch = receipt[:start] + receipt[end:], receipt[start:end].decode()
    leaf = hashlib.sha256(b"\x00" + unsigned).digest()
    index = int(re.search(r"<Index>\s*(\d+)\s*</Index>", batch).group(1))
    path = [bytes.fromhex(h) for h in re.findall(r"<Hash>\s*([0-9a-f]{64})\s*</Hash>", batch)]
    head = base64.b64decode(re.search(r"<Head>([^<]*)</Head>", batch).group(1))
    open(sys.argv[2], "wb").write(head)
    text = head.decode()
    size = int(re.search(r"<Size>\s*(\d+)\s*</Size>", text).group(1))
    root = bytes.fromhex(re.search(r"<Root>\s*([0-9a-f]{64})\s*</Root>", text).group(1))
    if root_from_path(index, size, leaf, path) != root:
        print(f"proof FAILS: leaf {index} of {size} does not lead to the signed root")
        return 1
    print(f"proof holds: leaf {index} of {size} leads to root {root.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
