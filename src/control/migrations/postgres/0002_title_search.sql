-- Full-text search over title name (weight A), tags (B) and description (D): a tsvector
-- column with a GIN index (PostgreSQL dialect of ../0002_title_search.sql).
-- The store writes `search` with each title from text folded like FTS5's unicode61 tokenizer
-- (src/control/store/search.rs); rows from before this migration (NULL) are indexed by the
-- store when it opens.

ALTER TABLE titles ADD COLUMN search tsvector;
CREATE INDEX titles_search ON titles USING GIN (search);
