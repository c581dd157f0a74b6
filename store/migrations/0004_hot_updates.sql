-- Checkpoints rewrite the same cells and catalog rows again and again
-- (an open window's cell changes every checkpoint until it is sealed).
-- Free room in each page lets PostgreSQL update a row in place (a HOT
-- update: no new index entry), which the wide text primary keys make
-- worth it; 70% is the fill factor PostgreSQL's documentation suggests
-- for update-heavy tables of this kind.
ALTER TABLE cells SET (fillfactor = 70);
ALTER TABLE services SET (fillfactor = 70);
