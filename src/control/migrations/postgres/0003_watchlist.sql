-- Each profile's watchlist (PostgreSQL dialect of ../0003_watchlist.sql: same table, columns
-- and constraints). `seq` orders a profile's entries by when they were added (newest =
-- highest); it comes from one sequence, so writers on several edges never draw the same
-- number. Adding a listed title again changes nothing.

CREATE SEQUENCE watchlist_seq;
CREATE TABLE watchlist (
    profile_id BIGINT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    title_id   TEXT   COLLATE "C" NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
    added_at   BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (profile_id, title_id)
);
CREATE INDEX watchlist_by_recency ON watchlist (profile_id, seq DESC);
CREATE INDEX watchlist_by_title ON watchlist (title_id);
