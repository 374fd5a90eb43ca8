-- Beyond plain SFT data (flows/preferences.py): distinct-solution sets and preference pairs
-- built from the stored samples, with lineage to the samples they come from.

-- Up to N right solutions per question, distinct by program signature; rank 0 first. A rerun
-- replaces the rows of the questions it saw (N or the distance may have changed).
CREATE TABLE IF NOT EXISTS solution_sets (
    question_id VARCHAR NOT NULL,
    sample_id   VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,
    signature   VARCHAR NOT NULL,   -- variables renamed v0, v1..., canonical formatting
    run_id      VARCHAR,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (question_id, sample_id)
);

-- pair_id = hash(pair_type, chosen_sample_id, rejected_sample_id, step): a rerun adds none.
-- prompt: the rendered user turn (tasks/render.py); prefix: for step pairs the steps before
-- the first wrong one, which start the assistant turn; chosen/rejected follow the prefix.
CREATE TABLE IF NOT EXISTS preference_pairs (
    pair_id            VARCHAR PRIMARY KEY,
    pair_type          VARCHAR NOT NULL,   -- outcome | step
    question_id        VARCHAR NOT NULL,
    chosen_sample_id   VARCHAR NOT NULL,
    rejected_sample_id VARCHAR NOT NULL,
    prompt             VARCHAR NOT NULL,
    prefix             VARCHAR NOT NULL DEFAULT '',
    chosen             VARCHAR NOT NULL,
    rejected           VARCHAR NOT NULL,
    step               INTEGER,            -- 0-based index of the first wrong step
    rule               VARCHAR NOT NULL,   -- how the pair was chosen (tasks/preferences/pairs.py)
    meta               JSON,
    run_id             VARCHAR,
    created_at         TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- Pairs next to their question: what was asked, the gold, both answers and verdicts.
CREATE OR REPLACE VIEW pair_browser AS
SELECT
    p.pair_type,
    q.text              AS question,
    q.gold_answer,
    p.step,
    p.prefix,
    p.chosen,
    c.predicted         AS chosen_answer,
    c.correct           AS chosen_correct,
    p.rejected,
    r.predicted         AS rejected_answer,
    r.correct           AS rejected_correct,
    r.meta ->> 'error_kind' AS error_kind,
    p.rule,
    q.context,
    q.source,
    p.question_id,
    p.chosen_sample_id,
    p.rejected_sample_id,
    p.pair_id,
    p.run_id
FROM preference_pairs p
JOIN questions q ON q.question_id = p.question_id
JOIN samples c   ON c.sample_id = p.chosen_sample_id
JOIN samples r   ON r.sample_id = p.rejected_sample_id;

-- Verifier / reward-model labels: every executed sample of a question with a gold answer.
-- A program that failed to run is labelled wrong (a verifier must reject it too).
CREATE OR REPLACE VIEW verifier_labels AS
SELECT
    q.question_id,
    s.sample_id,
    q.text        AS question,
    q.context,
    s.program     AS solution,
    CASE WHEN s.exec_status = 'ok' THEN coalesce(s.correct, false) ELSE false END AS correct,
    s.exec_status,
    s.predicted,
    q.gold_answer,
    s.teacher,
    s.meta ->> 'error_kind' AS error_kind,
    q.source,
    q.meta ->> 'kind' AS kind
FROM samples s
JOIN questions q ON q.question_id = s.question_id
WHERE q.gold_answer IS NOT NULL AND s.program IS NOT NULL AND s.exec_status IS NOT NULL;

-- The distinct-solution sets, readable: several SFT rows per question.
CREATE OR REPLACE VIEW distinct_solutions AS
SELECT
    ss.question_id,
    ss.rank,
    q.text      AS question,
    q.context,
    s.program,
    s.predicted AS answer,
    q.source,
    q.meta ->> 'kind' AS kind,
    q.difficulty,
    ss.signature,
    ss.sample_id
FROM solution_sets ss
JOIN questions q ON q.question_id = ss.question_id
JOIN samples s   ON s.sample_id = ss.sample_id;
