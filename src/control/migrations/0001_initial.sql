-- Accounts, profiles, sessions, catalog and watch progress.
-- Times are unix seconds. JSON columns hold arrays written and read only by the store.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    tier          TEXT    NOT NULL DEFAULT 'basic'
                          CHECK (tier IN ('basic', 'standard', 'premium')),
    created_at    INTEGER NOT NULL
);

CREATE TABLE profiles (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    display_name TEXT    NOT NULL,
    language     TEXT    NOT NULL,
    maturity     TEXT    NOT NULL CHECK (maturity IN ('KIDS', 'TEEN', 'ADULT')),
    created_at   INTEGER NOT NULL
);
CREATE INDEX profiles_by_user ON profiles (user_id, id);

-- Only the SHA-256 of a session token is stored.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- `pk` is a stable rowid for the full-text index (migration 0002).
CREATE TABLE titles (
    pk               INTEGER PRIMARY KEY,
    id               TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL,
    description      TEXT    NOT NULL DEFAULT '',
    tags             TEXT    NOT NULL DEFAULT '[]',
    rating           TEXT    NOT NULL CHECK (rating IN ('G', 'PG', 'PG-13', 'R')),
    duration_seconds INTEGER NOT NULL CHECK (duration_seconds > 0),
    origin_path      TEXT    NOT NULL,
    acl_path         TEXT    NOT NULL,
    renditions       TEXT    NOT NULL,
    countries        TEXT    NOT NULL DEFAULT '[]',
    available_from   INTEGER,
    available_until  INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX titles_by_name ON titles (name COLLATE NOCASE, id);

-- `seq` orders a profile's entries by last write (newest = highest).
CREATE TABLE progress (
    profile_id       INTEGER NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    title_id         TEXT    NOT NULL REFERENCES titles (id) ON DELETE CASCADE,
    position_seconds INTEGER NOT NULL CHECK (position_seconds >= 0),
    updated_at       INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    PRIMARY KEY (profile_id, title_id)
) WITHOUT ROWID;
CREATE INDEX progress_by_recency ON progress (profile_id, seq DESC);
CREATE INDEX progress_by_title ON progress (title_id);
