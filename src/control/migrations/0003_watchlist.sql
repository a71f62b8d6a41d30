-- Each profile's watchlist: titles saved to watch later, each at most once per profile.
-- `seq` orders a profile's entries by when they were added (newest = highest); adding a
-- listed title again changes nothing. A deleted profile or title takes its entries with it.

CREATE TABLE watchlist (
    profile_id INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    title_id   TEXT    NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
    added_at   INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) WITHOUT ROWID;
CREATE INDEX watchlist_by_recency ON watchlist (profile_id, seq DESC);
CREATE INDEX watchlist_by_title ON watchlist (title_id);
