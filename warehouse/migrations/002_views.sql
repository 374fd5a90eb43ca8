-- Browsing views. Plain SQL over the tables so that the DuckDB CLI shows the same thing.

CREATE OR REPLACE VIEW latest_snapshot AS
SELECT * FROM snapshots ORDER BY snapshot_id DESC LIMIT 1;

-- The latest snapshot, one row per kept example, readable columns first.
CREATE OR REPLACE VIEW curated AS
SELECT
    q.source,
    q.meta ->> 'kind'        AS kind,
    q.difficulty,
    q.text                   AS question,
    q.context,
    s.program,
    s.predicted              AS answer,
    q.gold_answer,
    s.correct,
    s.teacher,
    s.model,
    s.prompt_version,
    q.question_id,
    s.sample_id,
    q.source_id,
    si.snapshot_id
FROM snapshot_items si
JOIN latest_snapshot ls ON si.snapshot_id = ls.snapshot_id
JOIN samples s   ON s.sample_id = si.sample_id
JOIN questions q ON q.question_id = si.question_id;

-- Pairs that dedup collapsed, with both texts side by side.
CREATE OR REPLACE VIEW duplicates AS
SELECT
    d.method,
    round(d.similarity, 4) AS similarity,
    q.text  AS dropped_question,
    r.text  AS kept_question,
    d.item_id,
    d.representative_id,
    d.run_id
FROM dedup d
JOIN questions q ON q.question_id = d.item_id
JOIN questions r ON r.question_id = d.representative_id
WHERE d.item_id <> d.representative_id;

-- One row per run: what came in, what was kept, why the rest left.
CREATE OR REPLACE VIEW run_summary AS
SELECT
    r.run_id,
    r.flow,
    r.status,
    r.started_at,
    r.finished_at,
    date_diff('millisecond', r.started_at, r.finished_at) / 1000.0 AS seconds,
    r.snapshot_id,
    CAST(r.counts ->> 'input' AS INTEGER)     AS input,
    CAST(r.counts ->> 'new' AS INTEGER)       AS new,
    CAST(r.counts ->> 'kept' AS INTEGER)      AS kept,
    CAST(r.counts ->> 'rejected' AS INTEGER)  AS rejected,
    (SELECT string_agg(reason || '=' || n, ', ' ORDER BY n DESC)
       FROM (SELECT reason, count(*) AS n FROM rejections x
             WHERE x.run_id = r.run_id GROUP BY reason)) AS rejection_reasons
FROM runs r;
