-- The key of each question's normalized context (tasks/types.py:context_key). Exact
-- duplicates and semantic-dedup blocks never span two contexts, so a refresh fetches only
-- the representatives of the contexts it brings, not every one the warehouse holds
-- (issue 22). Rows stored before this migration get their key from the store on first
-- use (Store.representatives).
ALTER TABLE questions ADD COLUMN IF NOT EXISTS context_key VARCHAR;
