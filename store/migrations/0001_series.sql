-- Series cells, service catalog, detection state and log marks: what the
-- processor keeps (the PostgreSQL twin of store/src/duck.rs's schema).
-- Cells and catalog rows are per instance: several causeway instances
-- write their own and readers merge them (HDR histograms merge exactly).

CREATE TABLE cells (
    tenant     TEXT     NOT NULL,
    instance   TEXT     NOT NULL,
    family     TEXT     NOT NULL,
    a          TEXT     NOT NULL,
    b          TEXT     NOT NULL,
    c          SMALLINT NOT NULL,
    d          SMALLINT NOT NULL,
    resolution SMALLINT NOT NULL,
    start_ns   BIGINT   NOT NULL,
    calls      BIGINT   NOT NULL,
    errors     BIGINT   NOT NULL,
    hist       BYTEA    NOT NULL,
    handed_on  BOOLEAN  NOT NULL,
    PRIMARY KEY (tenant, instance, family, a, b, c, d, resolution, start_ns)
);

CREATE TABLE services (
    tenant   TEXT   NOT NULL,
    instance TEXT   NOT NULL,
    name     TEXT   NOT NULL,
    spans    BIGINT NOT NULL,
    errors   BIGINT NOT NULL,
    first_ns BIGINT NOT NULL,
    last_ns  BIGINT NOT NULL,
    PRIMARY KEY (tenant, instance, name)
);

-- One document per tenant and part (baselines, signatures, anomalies,
-- incidents): written by whichever instance runs the tenant's detection.
CREATE TABLE detection_state (
    tenant   TEXT   NOT NULL,
    part     TEXT   NOT NULL,
    state    BYTEA  NOT NULL,
    saved_ns BIGINT NOT NULL,
    PRIMARY KEY (tenant, part)
);

-- Named positions per instance: `wal`, the write-ahead log position whose
-- requests this instance's cells and catalog rows hold.
CREATE TABLE marks (
    instance TEXT  NOT NULL,
    name     TEXT  NOT NULL,
    value    BYTEA NOT NULL,
    PRIMARY KEY (instance, name)
);
