-- Questions kept out of the data because they overlap a registered benchmark test set.
CREATE OR REPLACE VIEW contamination AS
SELECT
    r.reason                        AS signal,
    split_part(r.detail, ' ', 1)    AS benchmark,
    q.text                          AS question,
    r.detail,
    q.source,
    r.item_id                       AS question_id,
    r.run_id
FROM rejections r
JOIN questions q ON q.question_id = r.item_id
WHERE r.stage = 'decontaminate';
