-- Subsets of a pinned snapshot for fine-tuning experiments. subset_id is a hash of
-- (snapshot_id, strategy, size, seed, params), so asking again for the same subset finds the
-- same row and adds none. Subsets of one (snapshot, strategy, seed, params) are prefixes of one
-- ordering: parent_subset_id names the next smaller subset of the ladder it was made with.

CREATE TABLE IF NOT EXISTS subsets (
    subset_id        VARCHAR PRIMARY KEY,
    snapshot_id      INTEGER NOT NULL,
    strategy         VARCHAR NOT NULL,
    size             INTEGER NOT NULL,
    seed             BIGINT NOT NULL,
    params           JSON,
    parent_subset_id VARCHAR,
    created_at       TIMESTAMP NOT NULL DEFAULT current_timestamp
);

-- rank: position in the selection order (0 first), so a prefix of the ranks is the
-- smaller subset of the same ladder.
CREATE TABLE IF NOT EXISTS subset_items (
    subset_id   VARCHAR NOT NULL,
    question_id VARCHAR NOT NULL,
    sample_id   VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,
    PRIMARY KEY (subset_id, question_id)
);

-- One readable row per subset example, in selection order.
CREATE OR REPLACE VIEW subset_examples AS
SELECT
    si.subset_id,
    si.rank,
    q.source,
    q.meta ->> 'kind' AS kind,
    q.difficulty,
    q.text            AS question,
    q.context,
    s.program,
    s.predicted       AS answer,
    q.question_id,
    s.sample_id
FROM subset_items si
JOIN samples s   ON s.sample_id = si.sample_id
JOIN questions q ON q.question_id = si.question_id;
