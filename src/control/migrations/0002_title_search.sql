-- Full-text search over title name, description and tags (FTS5, external content).

CREATE VIRTUAL TABLE titles_fts USING fts5 (
    name, description, tags,
    content = 'titles', content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3'
);

CREATE TRIGGER titles_fts_insert AFTER INSERT ON titles BEGIN
    INSERT INTO titles_fts (rowid, name, description, tags)
    VALUES (new.pk, new.name, new.description, new.tags);
END;

CREATE TRIGGER titles_fts_delete AFTER DELETE ON titles BEGIN
    INSERT INTO titles_fts (titles_fts, rowid, name, description, tags)
    VALUES ('delete', old.pk, old.name, old.description, old.tags);
END;

CREATE TRIGGER titles_fts_update AFTER UPDATE ON titles BEGIN
    INSERT INTO titles_fts (titles_fts, rowid, name, description, tags)
    VALUES ('delete', old.pk, old.name, old.description, old.tags);
    INSERT INTO titles_fts (rowid, name, description, tags)
    VALUES (new.pk, new.name, new.description, new.tags);
END;

-- Index titles that existed before this migration.
INSERT INTO titles_fts (titles_fts) VALUES ('rebuild');
