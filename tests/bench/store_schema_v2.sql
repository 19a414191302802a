-- The results schema as protolab wrote it at version 2 (frozen: tests open such stores).
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    suite       TEXT NOT NULL,
    status      TEXT NOT NULL
                CHECK (status IN ('running', 'complete', 'interrupted', 'failed')),
    started_at  TEXT NOT NULL,          -- ISO 8601, UTC
    ended_at    TEXT,
    host        TEXT NOT NULL,          -- pid liveness is only judged on the same host
    pid         INTEGER NOT NULL,
    pid_start   INTEGER,                -- /proc start time of pid, so a reused pid is not alive
    manifest    TEXT NOT NULL           -- JSON: versions, kernel, CPU, settings, seeds
);
CREATE TABLE cells (
    id             INTEGER PRIMARY KEY,
    run_id         INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    params         TEXT NOT NULL,       -- JSON: protocol, link, workload, repetition
    status         TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'timeout')),
    error          TEXT,
    cpu_client     REAL,                -- CPU seconds during the cell
    cpu_server     REAL,
    cpu_forwarder  REAL,
    saturated      INTEGER,             -- 1: some process was CPU-bound; numbers measure Python
    started_at     TEXT NOT NULL,
    ended_at       TEXT,
    UNIQUE (run_id, idx)
);
CREATE TABLE samples (
    id               INTEGER PRIMARY KEY,
    cell_id          INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    repetition       INTEGER NOT NULL,
    warmup           INTEGER NOT NULL,
    protocol         TEXT NOT NULL,
    method           TEXT NOT NULL,
    path             TEXT NOT NULL,
    start_ns         INTEGER NOT NULL,
    connection_id    INTEGER NOT NULL,
    new_connection   INTEGER NOT NULL,
    conn_start_ns    INTEGER,
    connected_ns     INTEGER,
    handshake_ns     INTEGER,
    request_sent_ns  INTEGER,
    first_byte_ns    INTEGER,
    done_ns          INTEGER,
    status           INTEGER,
    stream_id        INTEGER,
    bytes_out        INTEGER NOT NULL,
    bytes_in         INTEGER NOT NULL,
    body_bytes       INTEGER NOT NULL,
    body_verified    INTEGER,
    alpn             TEXT,
    tls_version      TEXT,
    cipher           TEXT,
    resumed          INTEGER NOT NULL,
    early_data       INTEGER NOT NULL,
    error            TEXT,
    error_detail     TEXT,
    upgraded_ns      INTEGER,
    intended_ns      INTEGER,            -- open-loop: when the load model meant to send it
    content          BLOB,              -- the body, only when the request asked to keep it
    transport        TEXT NOT NULL      -- JSON object of integer counters
);
CREATE INDEX samples_by_cell ON samples (cell_id);
CREATE TABLE arrivals (
    sample_id  INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    t_ns       INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (sample_id, seq)
) WITHOUT ROWID;
CREATE TABLE messages (               -- per message of WebSocket, gRPC streams, push
    sample_id    INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    size         INTEGER NOT NULL,
    sent_ns      INTEGER,
    received_ns  INTEGER NOT NULL,
    born_ns      INTEGER,
    PRIMARY KEY (sample_id, idx)
) WITHOUT ROWID;
CREATE TABLE metrics (
    cell_id  INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    value    REAL NOT NULL,
    unit     TEXT NOT NULL,
    PRIMARY KEY (cell_id, name)
) WITHOUT ROWID;
CREATE INDEX cells_by_run ON cells (run_id);
