-- LLM teacher bookkeeping. llm_cache (001) holds responses by content key; these tables say
-- what each run paid for, how questions were selected among K samples, and where Batch API
-- jobs and synthesis judgments stand. No table ever holds an API key.

-- One row per logical request a run sent (retries are counted in `attempts`, not as rows).
-- A cache hit sends nothing and adds no row, so sum(cost_usd) by run is what that run paid.
CREATE TABLE IF NOT EXISTS llm_requests (
    key        VARCHAR NOT NULL,
    run_id     VARCHAR NOT NULL,
    model      VARCHAR NOT NULL,
    purpose    VARCHAR NOT NULL,          -- teacher | synth | judge
    via        VARCHAR NOT NULL,          -- online | batch
    status     VARCHAR NOT NULL,          -- ok | failed
    error      VARCHAR,
    attempts   INTEGER NOT NULL DEFAULT 1,
    tokens_in  INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost_usd   DOUBLE NOT NULL DEFAULT 0,
    latency_ms DOUBLE,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Which samples a run kept per question (gold: correct ones, distinct programs first;
-- no gold: the majority answer's samples) and how strongly the samples agreed.
CREATE TABLE IF NOT EXISTS selections (
    question_id VARCHAR NOT NULL,
    sample_id   VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,         -- 0 = the one published in snapshots
    method      VARCHAR NOT NULL,         -- gold | majority
    agreement   DOUBLE,                   -- votes / answered samples (majority only)
    votes       INTEGER,
    n_samples   INTEGER,
    run_id      VARCHAR,
    PRIMARY KEY (question_id, sample_id)
);

-- OpenAI Batch API jobs: enough to resume a killed run by batch id.
CREATE TABLE IF NOT EXISTS llm_batches (
    batch_id     VARCHAR PRIMARY KEY,
    run_id       VARCHAR NOT NULL,
    input_file   VARCHAR NOT NULL,
    request_keys JSON NOT NULL,           -- the custom_ids in this batch
    status       VARCHAR NOT NULL,
    output_file  VARCHAR,
    error_file   VARCHAR,
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at   TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Solvability judge verdicts on synthesized questions.
CREATE TABLE IF NOT EXISTS judgments (
    item_id    VARCHAR PRIMARY KEY,       -- question_id
    model      VARCHAR NOT NULL,
    solvable   BOOLEAN,
    reason     VARCHAR,
    run_id     VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
