-- The adaptive concurrency limit of the LLM client over a run: one row per change, so a run
-- against a local engine shows where the limit settled (next to llm_requests.attempts, which
-- says how many tries each request took).
CREATE TABLE IF NOT EXISTS llm_limits (
    run_id    VARCHAR NOT NULL,
    purpose   VARCHAR NOT NULL,           -- teacher | synth | judge
    t_s       DOUBLE NOT NULL,            -- seconds since that step's first request
    limit_now DOUBLE NOT NULL,            -- requests allowed in flight
    in_flight INTEGER NOT NULL
);
