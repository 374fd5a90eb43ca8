-- Core tables of the refresh path. Ids are content hashes (see tasks/types.py), so every
-- insert is "insert or ignore" and a rerun adds no rows.

CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR PRIMARY KEY,
    flow          VARCHAR NOT NULL,
    params        JSON,
    started_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at   TIMESTAMP,
    status        VARCHAR NOT NULL DEFAULT 'running',
    counts        JSON,
    stage_seconds JSON,
    snapshot_id   INTEGER
);

CREATE TABLE IF NOT EXISTS questions (
    question_id   VARCHAR PRIMARY KEY,
    text          VARCHAR NOT NULL,
    context       VARCHAR NOT NULL DEFAULT '',
    source        VARCHAR NOT NULL,
    source_id     VARCHAR,
    gold_answer   VARCHAR,
    gold_program  VARCHAR,
    difficulty    INTEGER,
    meta          JSON,
    text_key      VARCHAR NOT NULL,
    run_id        VARCHAR,
    created_at    TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS samples (
    sample_id      VARCHAR PRIMARY KEY,
    question_id    VARCHAR NOT NULL,
    teacher        VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    sample_idx     INTEGER NOT NULL,
    gen_params     JSON,
    raw            VARCHAR,
    program        VARCHAR,
    exec_status    VARCHAR,
    exec_error     VARCHAR,
    predicted      VARCHAR,
    correct        BOOLEAN,
    tokens_in      INTEGER DEFAULT 0,
    tokens_out     INTEGER DEFAULT 0,
    cost_usd       DOUBLE DEFAULT 0,
    latency_ms     DOUBLE DEFAULT 0,
    run_id         VARCHAR,
    created_at     TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Response cache of LLM teachers: key = hash(base_url, model, messages, generation params).
CREATE TABLE IF NOT EXISTS llm_cache (
    key        VARCHAR PRIMARY KEY,
    request    JSON,
    response   JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- One vector per (normalized text, model): never embedded twice.
CREATE TABLE IF NOT EXISTS embeddings (
    item_id VARCHAR NOT NULL,
    model   VARCHAR NOT NULL,
    vector  FLOAT[] NOT NULL,
    PRIMARY KEY (item_id, model)
);

-- Every question that passed through dedup: representatives point at themselves.
CREATE TABLE IF NOT EXISTS dedup (
    item_id           VARCHAR PRIMARY KEY,
    representative_id VARCHAR NOT NULL,
    similarity        DOUBLE NOT NULL,
    method            VARCHAR NOT NULL,
    run_id            VARCHAR
);

-- Why an item left the path; one row per (item, stage), the first run that decided it wins.
CREATE TABLE IF NOT EXISTS rejections (
    item_id    VARCHAR NOT NULL,
    stage      VARCHAR NOT NULL,
    reason     VARCHAR NOT NULL,
    detail     VARCHAR,
    run_id     VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (item_id, stage)
);

CREATE TABLE IF NOT EXISTS validations (
    run_id     VARCHAR NOT NULL,
    suite      VARCHAR NOT NULL,
    success    BOOLEAN NOT NULL,
    statistics JSON,
    results    JSON,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE SEQUENCE IF NOT EXISTS snapshot_seq START 1;

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id  INTEGER PRIMARY KEY,
    run_id       VARCHAR,
    parent_id    INTEGER,
    n_items      INTEGER NOT NULL,
    content_hash VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE IF NOT EXISTS snapshot_items (
    snapshot_id INTEGER NOT NULL,
    question_id VARCHAR NOT NULL,
    sample_id   VARCHAR NOT NULL,
    PRIMARY KEY (snapshot_id, question_id)
);
