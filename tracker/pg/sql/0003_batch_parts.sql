-- A batch is applied in parts (by article), each in its own transaction, in parallel:
-- (batch_id, part) is what is recorded, with how many parts the batch was cut into.
ALTER TABLE applied_batches ADD COLUMN part integer NOT NULL DEFAULT 0;
ALTER TABLE applied_batches ADD COLUMN parts integer NOT NULL DEFAULT 1;
ALTER TABLE applied_batches DROP CONSTRAINT applied_batches_pkey;
ALTER TABLE applied_batches ADD PRIMARY KEY (batch_id, part);
