-- Experiments with repeats and intervals. Every evaluation keeps its per-question outcomes
-- (evaluation_items), so an arm's interval (a bootstrap over questions and runs) and the
-- paired difference of two arms on the same questions can be recomputed from SQL. A run's
-- params name its experiment, curve, arm, group (the runs that differ only by their seed)
-- and seed; experiment_results shows them as columns.

CREATE TABLE IF NOT EXISTS evaluation_items (
    eval_id     VARCHAR NOT NULL,
    position    INTEGER NOT NULL,   -- the question's place in the eval set (same set, same order)
    question_id VARCHAR NOT NULL,
    correct     BOOLEAN NOT NULL,
    status      VARCHAR NOT NULL,   -- ok | error | timeout | no_ans | no_program | ...
    PRIMARY KEY (eval_id, position)
);

-- The run's settings that tell arms and repeats apart first, then 004's columns.
CREATE OR REPLACE VIEW experiment_results AS
WITH latest AS (
    SELECT * FROM evaluations
    QUALIFY row_number() OVER (PARTITION BY finetune_run_id ORDER BY created_at DESC) = 1)
SELECT f.run_id, f.params ->> 'experiment_id' AS experiment_id,
       f.params ->> 'curve' AS curve, f.params ->> 'arm' AS arm,
       f.params ->> 'group' AS group_id, CAST(f.params ->> 'train_seed' AS INTEGER) AS seed,
       CAST(f.params ->> 'repeat' AS INTEGER) AS repeat, f.params ->> 'method' AS method,
       f.base_model, s.strategy, s.size AS examples,
       CAST(f.params ->> 'max_steps' AS INTEGER) AS max_steps,
       e.eval_id, e.eval_set, e.n AS eval_n, round(e.accuracy, 4) AS accuracy,
       round(e.exec_error_rate, 4) AS exec_error_rate, f.train_seconds, f.tokens_per_s,
       f.status, f.subset_id, f.snapshot_id, f.output_dir, f.started_at
FROM finetune_runs f
LEFT JOIN subsets s ON s.subset_id = f.subset_id
LEFT JOIN latest e ON e.finetune_run_id = f.run_id;
