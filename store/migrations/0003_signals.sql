-- Connector signals (commits, deploys, tickets, messages), their service
-- index, sync cursors and sealed credentials: the PostgreSQL twin of
-- store/src/signals.rs. Text is stored redacted, as in DuckDB.

CREATE TABLE signals (
    tenant        TEXT   NOT NULL,
    source        TEXT   NOT NULL,
    external_id   TEXT   NOT NULL,
    kind          TEXT   NOT NULL,
    url           TEXT,
    title         TEXT   NOT NULL,
    body          TEXT   NOT NULL,
    author        TEXT,
    created_ns    BIGINT NOT NULL,
    updated_ns    BIGINT NOT NULL,
    repository    TEXT,
    changed_paths TEXT   NOT NULL,
    services      TEXT   NOT NULL,
    status        TEXT,
    version       TEXT,
    commit_sha    TEXT,
    PRIMARY KEY (tenant, source, external_id)
);
CREATE INDEX signals_by_time ON signals (tenant, created_ns DESC);
CREATE INDEX signals_by_update ON signals (updated_ns);

CREATE TABLE signal_services (
    tenant      TEXT NOT NULL,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    service     TEXT NOT NULL,
    PRIMARY KEY (tenant, source, external_id, service)
);
CREATE INDEX signal_services_by_service ON signal_services (tenant, service);

CREATE TABLE sync_cursors (
    tenant     TEXT   NOT NULL,
    connector  TEXT   NOT NULL,
    stream     TEXT   NOT NULL,
    cursor     TEXT   NOT NULL,
    updated_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant, connector, stream)
);

-- Sealed with AES-256-GCM by the connectors crate; the key never comes here.
CREATE TABLE sealed_secrets (
    tenant TEXT  NOT NULL,
    name   TEXT  NOT NULL,
    key_id TEXT  NOT NULL,
    sealed BYTEA NOT NULL,
    PRIMARY KEY (tenant, name)
);
