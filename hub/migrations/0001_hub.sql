-- DocAxis hub on PostgreSQL: the first schema (applied by the hub at start, see
-- hub/src/db/pg.rs, "Migrations"). The same state as the embedded redb file, with the
-- uniqueness rules enforced by the database so that replicas racing on one packet cannot
-- both win.

-- Registered agencies: the directory. `body` is the Agency as JSON.
CREATE TABLE agencies (
    code text PRIMARY KEY,
    body text NOT NULL
);

-- Every accepted packet, byte for byte, with what the hub remembers about it (PacketMeta as
-- JSON, including the signed submission receipt). A packet id is stored once.
CREATE TABLE packets (
    id bytea PRIMARY KEY CHECK (length(id) = 32),
    bytes bytea NOT NULL,
    meta text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('document', 'status')),
    sender text NOT NULL,
    accepted_ms bigint NOT NULL
);
-- The operators' ledger: documents by acceptance time (search newest first, counts per hour).
CREATE INDEX packets_documents_by_time ON packets (accepted_ms, id) WHERE kind = 'document';

-- (From, DocumentId, BussinessDocType) → the one packet that uses it (documents only).
CREATE TABLE business_keys (
    key text PRIMARY KEY,
    packet_id bytea NOT NULL REFERENCES packets (id)
);

-- One row per routed (packet, recipient). Pending while delivered_ms is null; the queue is
-- those rows ordered by (urgency rank, seq).
CREATE SEQUENCE queue_seq;
CREATE TABLE deliveries (
    packet_id bytea NOT NULL REFERENCES packets (id),
    recipient text NOT NULL,
    document boolean NOT NULL,
    queued_ms bigint NOT NULL,
    rank smallint NOT NULL,
    seq bigint NOT NULL,
    delivered_ms bigint,
    receipt text,
    PRIMARY KEY (packet_id, recipient),
    CHECK ((delivered_ms IS NULL) = (receipt IS NULL))
);
CREATE INDEX deliveries_queue ON deliveries (recipient, rank, seq) WHERE delivered_ms IS NULL;
CREATE INDEX deliveries_documents_delivered ON deliveries (delivered_ms)
    WHERE document AND delivered_ms IS NOT NULL;

-- Delivery receipts a sender has still to collect. Sequence numbers are per sender and given
-- under the lock of that sender's counter row, so they commit in order (a node that moved
-- past a number never misses a later commit).
CREATE TABLE receipt_counters (
    sender text PRIMARY KEY,
    last bigint NOT NULL
);
CREATE TABLE sender_receipts (
    sender text NOT NULL,
    seq bigint NOT NULL,
    packet_id bytea NOT NULL,
    recipient text NOT NULL,
    PRIMARY KEY (sender, seq),
    FOREIGN KEY (packet_id, recipient) REFERENCES deliveries (packet_id, recipient)
);

-- Every packet of one business document, for tracking (see RedbHub's `by_document`).
CREATE TABLE by_document (
    owner text NOT NULL,
    document_id text NOT NULL,
    packet_id bytea NOT NULL REFERENCES packets (id),
    PRIMARY KEY (owner, document_id, packet_id)
);

-- When each agency last polled any replica (each replica shares what it saw every few
-- seconds, so "silent agency" alerts and the console judge the whole hub, not one replica).
CREATE TABLE agency_polls (
    code text PRIMARY KEY,
    last_ms bigint NOT NULL
);

-- The CRLs each replica read from its files, shared so that a revocation published at one
-- machine applies at every replica (each keeps the newest CRL of every issuer).
CREATE TABLE crls (
    sha256 bytea PRIMARY KEY CHECK (length(sha256) = 32),
    pem bytea NOT NULL,
    added_ms bigint NOT NULL
);

-- Operator incidents, and the mail that reports them (written in one transaction).
CREATE TABLE alerts_open (
    key text PRIMARY KEY,
    body text NOT NULL
);
CREATE TABLE alerts_past (
    seq bigserial PRIMARY KEY,
    body text NOT NULL
);
CREATE TABLE mail_queue (
    seq bigserial PRIMARY KEY,
    body text NOT NULL,
    next_attempt_ms bigint NOT NULL
);
CREATE TABLE mail_counters (
    name text PRIMARY KEY,
    n bigint NOT NULL
);
