-- Sample annotations outside identity (e.g. the labelled error of the noisy teacher).
ALTER TABLE samples ADD COLUMN IF NOT EXISTS meta JSON;
