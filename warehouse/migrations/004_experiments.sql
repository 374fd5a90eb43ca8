-- Fine-tuning experiments: one row per training run and one per evaluation. A finetune run
-- names the subset and snapshot it was trained on, so it can be reproduced from its row.

CREATE TABLE IF NOT EXISTS finetune_runs (
    run_id        VARCHAR PRIMARY KEY,
    subset_id     VARCHAR,
    snapshot_id   INTEGER,
    base_model    VARCHAR NOT NULL,
    params        JSON,
    output_dir    VARCHAR,
    status        VARCHAR NOT NULL,          -- running | completed | failed
    loss_curve    JSON,                      -- [{step, loss, lr}]
    metrics       JSON,                      -- final loss, steps, parameters, eval summary
    train_seconds DOUBLE,
    train_tokens  BIGINT,
    tokens_per_s  DOUBLE,
    device        VARCHAR,
    started_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at   TIMESTAMP
);

-- finetune_run_id is NULL for a model evaluated as is (a base model, a hub id).
CREATE TABLE IF NOT EXISTS evaluations (
    eval_id          VARCHAR PRIMARY KEY,
    finetune_run_id  VARCHAR,
    model_ref        VARCHAR NOT NULL,
    eval_set         VARCHAR NOT NULL,
    n                INTEGER NOT NULL,
    accuracy         DOUBLE,
    exec_error_rate  DOUBLE,
    no_program_rate  DOUBLE,
    failures         JSON,                   -- a sample of failures
    params           JSON,
    seconds          DOUBLE,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Each run with its latest evaluation, readable columns first.
CREATE OR REPLACE VIEW experiment_results AS
SELECT
    f.run_id,
    f.base_model,
    s.strategy,
    s.size               AS examples,
    CAST(f.params ->> 'max_steps' AS INTEGER) AS max_steps,
    e.eval_set,
    e.n                  AS eval_n,
    round(e.accuracy, 4) AS accuracy,
    round(e.exec_error_rate, 4) AS exec_error_rate,
    f.train_seconds,
    f.tokens_per_s,
    f.status,
    f.subset_id,
    f.snapshot_id,
    f.output_dir,
    f.started_at
FROM finetune_runs f
LEFT JOIN subsets s ON s.subset_id = f.subset_id
LEFT JOIN (
    SELECT * FROM evaluations
    QUALIFY row_number() OVER (PARTITION BY finetune_run_id ORDER BY created_at DESC) = 1
) e ON e.finetune_run_id = f.run_id;
