-- Abstention scores of an evaluation (tasks/experiments/abstention.py): +1 right, 0 "I don't know",
-- -1 wrong, averaged; precision/recall of abstaining on the unanswerable questions.
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS abstention_score DOUBLE;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS abstained INTEGER;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS unanswerable INTEGER;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS abstention_precision DOUBLE;
ALTER TABLE evaluations ADD COLUMN IF NOT EXISTS abstention_recall DOUBLE;
