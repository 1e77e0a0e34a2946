-- The highest generation applied per shard and epoch, never pruned: a Redis that comes
-- back older than it was is moved past it, so a batch id is never used twice.
CREATE TABLE shard_generations (
    shard      integer NOT NULL,
    epoch      text NOT NULL,
    generation bigint NOT NULL,
    PRIMARY KEY (shard, epoch)
);
INSERT INTO shard_generations (shard, epoch, generation)
SELECT shard, split_part(batch_id, ':', 2), max(split_part(batch_id, ':', 3)::bigint)
FROM applied_batches
WHERE batch_id ~ '^[0-9]+:[^:]+:[0-9]+$'
GROUP BY 1, 2;
