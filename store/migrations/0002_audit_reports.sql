-- The audit trail (append-only; entries leave by age or with their
-- tenant's purge) and RCA reports with their feedback: the PostgreSQL
-- twins of store/src/audit.rs and store/src/reports.rs. `seq` comes from
-- the database, so instances sharing it never collide.

CREATE TABLE audit (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          TEXT   NOT NULL,
    at_ns           BIGINT NOT NULL,
    action          TEXT   NOT NULL,
    outcome         TEXT   NOT NULL,
    via             TEXT   NOT NULL,
    client          TEXT,
    key_fingerprint TEXT,
    detail          TEXT   NOT NULL
);
CREATE INDEX audit_by_tenant ON audit (tenant, at_ns DESC, seq DESC);
CREATE INDEX audit_by_time ON audit (at_ns);

CREATE TABLE rca_reports (
    tenant      TEXT   NOT NULL,
    id          BIGINT NOT NULL,
    incident    BIGINT NOT NULL,
    onset_ns    BIGINT NOT NULL,
    computed_ns BIGINT NOT NULL,
    report      TEXT   NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX rca_reports_by_onset ON rca_reports (tenant, onset_ns DESC, id DESC);

CREATE TABLE rca_feedback (
    tenant   TEXT   NOT NULL,
    id       BIGINT NOT NULL,
    feedback TEXT   NOT NULL,
    at_ns    BIGINT NOT NULL
);
CREATE INDEX rca_feedback_by_report ON rca_feedback (tenant, id, at_ns);
